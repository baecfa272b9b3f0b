import type { ColumnType, Generated } from 'kysely';
import type { Id, Int64 } from './schema.js';

type Nullable64 = ColumnType<number | string | null, number | null | undefined, number | null>;

/** The transactional outbox (0007). */
export interface EventTable {
  seq: Generated<Id>;
  id: string;
  type: string;
  at: Int64;
  actor: string | null;
  actor_kind: string | null;
  address: string | null;
  project: string | null;
  repository: string | null;
  tag: string | null;
  digest: string | null;
  previous_digest: string | null;
  media_type: string | null;
  size: Nullable64;
  node: string | null;
  /** JSON text or null. */
  detail: string | null;
  /** 1 once its deliveries were created (0/1 in both dialects). */
  fanned_out: ColumnType<number, number | undefined, number>;
}

export interface WebhookTable {
  id: Generated<Id>;
  /** Null: system-wide. */
  project_id: Id | null;
  url: string;
  /** JSON array of event types. */
  events: string;
  repository: string | null;
  tag: string | null;
  format: string;
  /** JSON object. */
  headers: string;
  secret: string | null;
  enabled: number;
  created_by: string | null;
  created_at: Int64;
  updated_at: Int64;
}

export interface WebhookDeliveryTable {
  id: Generated<Id>;
  webhook_id: Id;
  event_seq: Id;
  ordering_key: string;
  state: string;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Nullable64;
  lease_until: Nullable64;
  lease_owner: string | null;
  last_status: number | null;
  last_error: string | null;
  latency_ms: number | null;
  response: string | null;
  created_at: Int64;
  delivered_at: Nullable64;
}

export interface EventsDatabase {
  events: EventTable;
  webhooks: WebhookTable;
  webhook_deliveries: WebhookDeliveryTable;
}
