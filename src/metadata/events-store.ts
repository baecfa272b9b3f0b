/**
 * Who made a change and where: passed by the HTTP handlers and control services into the metadata
 * write methods, recorded in each tag-history row and in the outbox event of the change.
 */
export interface WriteContext {
  /** The principal's name; null when nobody authenticated (anonymous, open access). */
  actor: string | null;
  /** `user`, `robot`, `anonymous` or `system` (local CLI, background jobs). */
  actorKind: string;
  /** The client's address, as the request's trusted-proxy rules give it. */
  address: string | null;
  /** The node (and process) that handled the change: `node.name`, or host name and pid. */
  node: string;
}

/** Options of the metadata calls that move, remove or create tags and manifests. */
export interface WriteOptions {
  /** Immutable tags (TagGuard): the rule that protects `tag`, or null. */
  immutable?(tag: string): string | null;
  /** Who writes; recorded in tag history and in the events of the change. */
  context?: WriteContext;
  /**
   * The caller calls `MetadataStore.settle()` itself once a batch of changes is done, instead of
   * each change waiting out the nodes' read caches on its own (retention deletes many). Only
   * `manifests.delete` takes it.
   */
  settleLater?: boolean;
}

/** Event types. `webhook.test` is delivered only to the webhook that asked for it. */
export const eventTypes = [
  'artifact.pushed',
  'artifact.pulled',
  'artifact.deleted',
  'tag.moved',
  'tag.deleted',
  'project.created',
  'project.updated',
  'project.deleted',
  'member.changed',
  'member.removed',
  'gc.finished',
  'retention.finished',
  'quota.exceeded',
  'quota.warning',
  'scan.completed',
  'webhook.test',
] as const;
export type EventType = (typeof eventTypes)[number];

/** One event, as stored in the outbox and rendered into every payload format. */
export interface RegistryEvent {
  /** UUID: the idempotency key of every delivery of this event. */
  id: string;
  type: EventType;
  at: Date;
  actor: string | null;
  actorKind: string | null;
  address: string | null;
  project: string | null;
  repository: string | null;
  tag: string | null;
  digest: string | null;
  /** The tag's digest before a move or deletion. */
  previousDigest: string | null;
  mediaType: string | null;
  size: number | null;
  node: string | null;
  /** Small, secret-free facts (e.g. pull counts of an aggregate, run summaries). */
  detail: Record<string, unknown> | null;
}

export type NewEvent = Omit<RegistryEvent, 'id' | 'at'> & { id?: string; at?: Date };

export type WebhookFormat = 'stowage' | 'cloudevents' | 'distribution' | 'slack';

export interface WebhookRecord {
  id: string;
  /** Null: system-wide (every project's events and system events). */
  project: string | null;
  url: string;
  /** Event types delivered; empty: all (except webhook.test, delivered only on request). */
  events: EventType[];
  /** Glob over repository names (* and ?); null: all. */
  repository: string | null;
  /** Glob over tags; null: all (events without a tag pass a tag filter only when it is null). */
  tag: string | null;
  format: WebhookFormat;
  headers: Record<string, string>;
  enabled: boolean;
  /** Whether a secret is set (the secret itself never leaves the store except to sign). */
  hasSecret: boolean;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A webhook to create: its fields, with the secret itself instead of `hasSecret`. */
export type NewWebhook = Omit<WebhookRecord, 'id' | 'hasSecret' | 'createdAt' | 'updatedAt'> & { secret: string | null };

export type WebhookChanges = Partial<Omit<NewWebhook, 'project' | 'createdBy'>>;

export type DeliveryState = 'pending' | 'delivered' | 'dead';

export interface DeliveryRecord {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: EventType;
  repository: string | null;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  latencyMs: number | null;
  /** The first KiB of the endpoint's last answer. */
  response: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

/** A delivery claimed by one dispatcher until `leaseUntil`: with its event and its webhook's secret. */
export interface ClaimedDelivery {
  id: string;
  attempts: number;
  leaseUntil: number;
  event: RegistryEvent;
  webhook: WebhookRecord & { secret: string | null };
}

export interface AttemptOutcome {
  status: number | null;
  error: string | null;
  latencyMs: number;
  response: string | null;
}

/**
 * The transactional outbox and the webhook deliveries. Registry changes write their events inside
 * their own transaction (see ManifestQueries.put); `append` is for control-plane events that have
 * no registry transaction of their own.
 */
export interface EventQueries {
  append(events: NewEvent[]): Promise<RegistryEvent[]>;
  /** Events by id (uuid), newest first, for the API. */
  recent(limit: number, filter?: { project?: string }): Promise<RegistryEvent[]>;
  /**
   * Turns committed events not yet fanned out into deliveries for the enabled webhooks whose
   * filters match, in event order. One fan-out at a time across nodes. Resolves to the number
   * of events handled (0: nothing to do, or another node is at it).
   */
  fanOut(limit: number, matches: (webhook: WebhookRecord, event: RegistryEvent) => boolean): Promise<number>;
  /**
   * Claims due deliveries for `leaseMs`: at most `limit`, none of disabled webhooks or of those in `skipWebhooks`, and
   * only the oldest unfinished delivery of each (webhook, repository), so that a repository's
   * events reach each webhook in order. Concurrent claimers (other nodes) never get the same row.
   */
  claim(owner: string, limit: number, leaseMs: number, skipWebhooks: string[]): Promise<ClaimedDelivery[]>;
  /** Records an attempt of a claimed delivery; false when the lease was lost meanwhile. */
  finish(id: string, leaseUntil: number, outcome: AttemptOutcome, next: { state: DeliveryState; nextAttemptAt: number | null }): Promise<boolean>;
  /** Gives a claimed delivery back unattempted, due again at `nextAttemptAt` (e.g. an open breaker). */
  postpone(id: string, leaseUntil: number, nextAttemptAt: number): Promise<boolean>;
  /**
   * Releases every claim. Only for a node that knows no other dispatcher is alive: an embedded
   * (SQLite) deployment at start-up, whose earlier process may have died holding claims.
   */
  releaseClaims(): Promise<number>;
  /** Deliveries not yet delivered nor dead. */
  pendingCount(): Promise<number>;
  /** Removes finished deliveries and fanned-out events older than `before`. */
  purge(before: Date): Promise<number>;
}

export interface WebhookQueries {
  create(webhook: NewWebhook): Promise<WebhookRecord | null>;
  get(id: string): Promise<WebhookRecord | null>;
  /** `project` undefined: all; null: system-wide only; a name: that project's. */
  list(project?: string | null): Promise<WebhookRecord[]>;
  update(id: string, changes: WebhookChanges): Promise<WebhookRecord | null>;
  delete(id: string): Promise<boolean>;
  deliveries(webhookId: string, page: { offset: number; limit: number }): Promise<{ items: DeliveryRecord[]; total: number }>;
  delivery(webhookId: string, deliveryId: string): Promise<DeliveryRecord | null>;
  /** A new delivery of an event to a webhook, due now (manual redelivery, test events). */
  enqueue(webhookId: string, eventId: string): Promise<DeliveryRecord>;
  /** Writes an event delivered to this webhook only (never fanned out), due now. */
  enqueueTest(webhookId: string, event: NewEvent): Promise<DeliveryRecord>;
}
