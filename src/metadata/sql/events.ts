import { randomUUID } from 'node:crypto';
import { PostgresAdapter, sql, type Kysely, type Selectable } from 'kysely';
import type {
  AttemptOutcome,
  ClaimedDelivery,
  DeliveryRecord,
  DeliveryState,
  EventQueries,
  EventType,
  NewEvent,
  NewWebhook,
  RegistryEvent,
  WebhookChanges,
  WebhookFormat,
  WebhookQueries,
  WebhookRecord,
  WriteContext,
} from '../events-store.js';
import type { EventTable, WebhookDeliveryTable, WebhookTable } from './events-schema.js';
import type { Database, Id } from './schema.js';
import { bulkInsert } from './precompiled.js';

type Db = Kysely<Database>;

/** Key of the PostgreSQL advisory lock that admits one fan-out at a time across nodes. */
const FAN_OUT_LOCK = 7_007_007;

/** Writes events into the outbox; inside a registry transaction, they commit with the change. */
export async function writeEvents(trx: Db, events: NewEvent[], now: number, fannedOut = false): Promise<RegistryEvent[]> {
  if (events.length === 0) return [];
  const full = events.map((e) => ({ ...e, id: e.id ?? randomUUID(), at: e.at ?? new Date(now) }));
  // bulkInsert sends at most 128 rows (2,048 values) a statement, far below SQLite's limit.
  await insertEvents(trx, full, fannedOut);
  return full;
}

// The outbox's columns, in the order insertEvents gives each row's values.
const insertEventRows = bulkInsert<Database>('events', [
  'id', 'type', 'at', 'actor', 'actor_kind', 'address', 'project', 'repository', 'tag', 'digest', 'previous_digest', 'media_type', 'size', 'node', 'detail', 'fanned_out',
]);

async function insertEvents(trx: Db, full: RegistryEvent[], fannedOut: boolean): Promise<void> {
  await insertEventRows(
    trx,
    full.map((e) => [
      e.id,
      e.type,
      e.at.getTime(),
      e.actor,
      e.actorKind,
      e.address,
      e.project,
      e.repository,
      e.tag,
      e.digest,
      e.previousDigest,
      e.mediaType,
      e.size,
      e.node,
      e.detail === null ? null : JSON.stringify(e.detail),
      fannedOut ? 1 : 0,
    ]),
  );
}

/**
 * Writes the events of removing whole repositories (a repository or a project deleted through the
 * API): `tag.deleted` for each tag and `artifact.deleted` for each manifest, in the transaction
 * that removes them (call it before the rows go).
 */
export async function writeRepositoryRemovalEvents(trx: Db, repositories: string[], context: WriteContext | undefined, now: number): Promise<void> {
  for (const repository of repositories) {
    const [tags, manifests] = await Promise.all([
      trx
        .selectFrom('tags as t')
        .innerJoin('repositories as r', 'r.id', 't.repository_id')
        .innerJoin('manifests as m', 'm.id', 't.manifest_id')
        .select(['t.name', 'm.digest', 'm.media_type', 'm.size'])
        .where('r.name', '=', repository)
        .orderBy('t.name')
        .execute(),
      trx
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['m.digest', 'm.media_type', 'm.size'])
        .where('r.name', '=', repository)
        .orderBy('m.id')
        .execute(),
    ]);
    const described = (row: { media_type: string; size: number | string }) => ({ mediaType: row.media_type, size: Number(row.size) });
    await writeEvents(
      trx,
      [
        ...tags.map((t) => registryEvent('tag.deleted', repository, context, { ...described(t), tag: t.name, previousDigest: t.digest })),
        ...manifests.map((m) => registryEvent('artifact.deleted', repository, context, { ...described(m), digest: m.digest })),
      ],
      now,
    );
  }
}

function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** The outbox, fan-out into deliveries and the claims of dispatchers. */
export class SqlEvents implements EventQueries {
  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    /** Runs work in a transaction, retried on serialization failures. */
    private readonly transaction: <T>(work: (trx: Db) => Promise<T>) => Promise<T>,
  ) {}

  append(events: NewEvent[]): Promise<RegistryEvent[]> {
    return writeEvents(this.db, events, this.now());
  }

  async recent(limit: number, filter: { project?: string } = {}): Promise<RegistryEvent[]> {
    let query = this.db.selectFrom('events').selectAll();
    if (filter.project !== undefined) query = query.where('project', '=', filter.project);
    const rows = await query.orderBy('seq', 'desc').limit(limit).execute();
    return rows.map(toEvent);
  }

  /** `matches`: whether a webhook wants an event (the domain's filters: types, repository and tag globs). */
  async fanOut(limit: number, matches: (webhook: WebhookRecord, event: RegistryEvent) => boolean): Promise<number> {
    return this.transaction(async (trx) => {
      if (isPostgres(trx)) {
        const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${FAN_OUT_LOCK}) as locked`.execute(trx);
        if (!rows[0]?.locked) return 0;
      }
      // Marking first makes the transaction a writer from its first statement (SQLite then
      // holds the write lock and never has to upgrade a read lock, which could fail).
      const marked = await trx
        .updateTable('events')
        .set({ fanned_out: 2 })
        .where('seq', 'in', (eb) => eb.selectFrom('events').select('seq').where('fanned_out', '=', 0).orderBy('seq').limit(limit))
        .returningAll()
        .execute();
      if (marked.length === 0) return 0;
      const events = marked.map((row) => ({ seq: row.seq, event: toEvent(row) })).sort((a, b) => Number(a.seq) - Number(b.seq));
      const webhooks = (await webhookRows(trx).where('w.enabled', '=', 1).execute()).map(toWebhook);
      const at = this.now();
      const deliveries = events.flatMap(({ seq, event }) =>
        webhooks
          .filter((w) => matches(w, event))
          .map((w) => ({ webhook_id: w.id, event_seq: seq, ordering_key: event.repository ?? '', state: 'pending', attempts: 0, next_attempt_at: at, created_at: at })),
      );
      for (let i = 0; i < deliveries.length; i += 500) {
        await trx.insertInto('webhook_deliveries').values(deliveries.slice(i, i + 500)).execute();
      }
      await trx.updateTable('events').set({ fanned_out: 1 }).where('fanned_out', '=', 2).execute();
      return marked.length;
    });
  }

  async claim(owner: string, limit: number, leaseMs: number, skipWebhooks: string[]): Promise<ClaimedDelivery[]> {
    const claimed = await this.transaction(async (trx) => {
      const at = this.now();
      const leaseUntil = at + leaseMs;
      let due = trx
        .selectFrom('webhook_deliveries as d')
        .select('d.id')
        .where('d.state', '=', 'pending')
        .where('d.next_attempt_at', '<=', at)
        .where((eb) => eb.or([eb('d.lease_until', 'is', null), eb('d.lease_until', '<', at)]))
        // A disabled webhook's deliveries wait until it is enabled again.
        .where('d.webhook_id', 'in', (eb) => eb.selectFrom('webhooks').select('id').where('enabled', '=', 1))
        // A repository's events reach a webhook in order: only the oldest unfinished one is due.
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('webhook_deliveries as e')
                .select('e.id')
                .whereRef('e.webhook_id', '=', 'd.webhook_id')
                .whereRef('e.ordering_key', '=', 'd.ordering_key')
                .where('e.state', '=', 'pending')
                .where((eb) => eb.or([eb('e.event_seq', '<', eb.ref('d.event_seq')), eb.and([eb('e.event_seq', '=', eb.ref('d.event_seq')), eb('e.id', '<', eb.ref('d.id'))])])),
            ),
          ),
        )
        .orderBy('d.event_seq')
        .limit(limit);
      if (skipWebhooks.length > 0) due = due.where('d.webhook_id', 'not in', skipWebhooks);
      // Other nodes skip the rows this claim locks instead of waiting for them (PostgreSQL);
      // SQLite has a single writer, so claims never overlap there.
      if (isPostgres(trx)) due = due.forUpdate().skipLocked();
      const rows = await trx
        .updateTable('webhook_deliveries')
        .set({ lease_until: leaseUntil, lease_owner: owner })
        .where('id', 'in', due)
        .returning(['id', 'attempts', 'lease_until'])
        .execute();
      return rows.map((row) => ({ id: String(row.id), attempts: Number(row.attempts), leaseUntil }));
    });
    if (claimed.length === 0) return [];
    const rows = await this.db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('events as ev', 'ev.seq', 'd.event_seq')
      .selectAll('ev')
      .select(['d.id as delivery_id', 'd.webhook_id as delivery_webhook'])
      .where(
        'd.id',
        'in',
        claimed.map((c) => c.id),
      )
      .execute();
    const hooks = await webhookRows(this.db)
      .select('w.secret')
      .where(
        'w.id',
        'in',
        [...new Set(rows.map((r) => String(r.delivery_webhook)))],
      )
      .execute();
    const webhooks = new Map(hooks.map((row) => [String(row.id), { ...toWebhook(row), secret: row.secret }]));
    const byId = new Map(rows.map((row) => [String(row.delivery_id), row]));
    return claimed.flatMap((c) => {
      const row = byId.get(c.id);
      const webhook = row && webhooks.get(String(row.delivery_webhook));
      return row && webhook ? [{ ...c, event: toEvent(row), webhook }] : [];
    });
  }

  async finish(id: string, leaseUntil: number, outcome: AttemptOutcome, next: { state: DeliveryState; nextAttemptAt: number | null }): Promise<boolean> {
    const at = this.now();
    const result = await this.db
      .updateTable('webhook_deliveries')
      .set((eb) => ({
        state: next.state,
        attempts: eb('attempts', '+', 1),
        next_attempt_at: next.nextAttemptAt,
        lease_until: null,
        lease_owner: null,
        last_status: outcome.status,
        last_error: outcome.error,
        latency_ms: Math.round(outcome.latencyMs),
        response: outcome.response,
        delivered_at: next.state === 'delivered' ? at : null,
      }))
      .where('id', '=', id)
      .where('lease_until', '=', leaseUntil)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async postpone(id: string, leaseUntil: number, nextAttemptAt: number): Promise<boolean> {
    const result = await this.db
      .updateTable('webhook_deliveries')
      .set({ lease_until: null, lease_owner: null, next_attempt_at: nextAttemptAt })
      .where('id', '=', id)
      .where('lease_until', '=', leaseUntil)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async releaseClaims(): Promise<number> {
    const result = await this.db.updateTable('webhook_deliveries').set({ lease_until: null, lease_owner: null }).where('lease_until', 'is not', null).executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async pendingCount(): Promise<number> {
    const row = await this.db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('state', '=', 'pending')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async purge(before: Date): Promise<number> {
    const cutoff = before.getTime();
    return this.transaction(async (trx) => {
      const deliveries = await trx.deleteFrom('webhook_deliveries').where('state', '<>', 'pending').where('created_at', '<', cutoff).executeTakeFirst();
      // Events go once fanned out and without pending deliveries (their finished ones go with them).
      const events = await trx
        .deleteFrom('events')
        .where('fanned_out', '=', 1)
        .where('at', '<', cutoff)
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('webhook_deliveries as d').select('d.id').whereRef('d.event_seq', '=', 'events.seq').where('d.state', '=', 'pending'))))
        .executeTakeFirst();
      return Number(deliveries.numDeletedRows) + Number(events.numDeletedRows);
    });
  }
}

const webhookColumns = ['id', 'url', 'events', 'repository', 'tag', 'format', 'headers', 'enabled', 'created_by', 'created_at', 'updated_at'] as const;
type WebhookRow = Pick<Selectable<WebhookTable>, (typeof webhookColumns)[number]> & { project_name: string | null; has_secret: number | boolean };

function webhookRows(db: Db) {
  return db
    .selectFrom('webhooks as w')
    .leftJoin('projects as p', 'p.id', 'w.project_id')
    .select(webhookColumns.map((c) => `w.${c}` as const))
    .select(['p.name as project_name', sql<number>`case when w.secret is null then 0 else 1 end`.as('has_secret')]);
}

function toWebhook(row: WebhookRow): WebhookRecord {
  return {
    id: String(row.id),
    project: row.project_name,
    url: row.url,
    events: JSON.parse(row.events) as EventType[],
    repository: row.repository,
    tag: row.tag,
    format: row.format as WebhookFormat,
    headers: JSON.parse(row.headers) as Record<string, string>,
    enabled: Number(row.enabled) === 1,
    hasSecret: Number(row.has_secret) === 1,
    createdBy: row.created_by,
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function toEvent(row: Selectable<EventTable>): RegistryEvent {
  return {
    id: row.id,
    type: row.type as EventType,
    at: new Date(Number(row.at)),
    actor: row.actor,
    actorKind: row.actor_kind,
    address: row.address,
    project: row.project,
    repository: row.repository,
    tag: row.tag,
    digest: row.digest,
    previousDigest: row.previous_digest,
    mediaType: row.media_type,
    size: row.size === null ? null : Number(row.size),
    node: row.node,
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
  };
}

function deliveryRows(db: Db) {
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('events as ev', 'ev.seq', 'd.event_seq')
    .selectAll('d')
    .select(['ev.id as event_id', 'ev.type as event_type', 'ev.repository as event_repository']);
}

type DeliveryRow = Selectable<WebhookDeliveryTable> & { event_id: string; event_type: string; event_repository: string | null };

function toDelivery(row: DeliveryRow): DeliveryRecord {
  return {
    id: String(row.id),
    webhookId: String(row.webhook_id),
    eventId: row.event_id,
    eventType: row.event_type as EventType,
    repository: row.event_repository,
    state: row.state as DeliveryState,
    attempts: Number(row.attempts),
    nextAttemptAt: row.state === 'pending' && row.next_attempt_at !== null ? new Date(Number(row.next_attempt_at)) : null,
    lastStatus: row.last_status === null ? null : Number(row.last_status),
    lastError: row.last_error,
    latencyMs: row.latency_ms === null ? null : Number(row.latency_ms),
    response: row.response,
    createdAt: new Date(Number(row.created_at)),
    deliveredAt: row.delivered_at === null ? null : new Date(Number(row.delivered_at)),
  };
}

/** Webhooks and their delivery log. */
export class SqlWebhooks implements WebhookQueries {
  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {}

  async create(webhook: NewWebhook): Promise<WebhookRecord | null> {
    let projectId: Database['webhooks']['project_id'] = null;
    if (webhook.project !== null) {
      const project = await this.db.selectFrom('projects').select('id').where('name', '=', webhook.project).executeTakeFirst();
      if (!project) return null;
      projectId = project.id;
    }
    const at = this.now();
    const row = await this.db
      .insertInto('webhooks')
      .values({
        project_id: projectId,
        url: webhook.url,
        events: JSON.stringify(webhook.events),
        repository: webhook.repository,
        tag: webhook.tag,
        format: webhook.format,
        headers: JSON.stringify(webhook.headers),
        secret: webhook.secret,
        enabled: webhook.enabled ? 1 : 0,
        created_by: webhook.createdBy,
        created_at: at,
        updated_at: at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return this.get(String(row.id));
  }

  async get(id: string): Promise<WebhookRecord | null> {
    if (!/^\d{1,18}$/.test(id)) return null;
    const row = await webhookRows(this.db).where('w.id', '=', id).executeTakeFirst();
    return row ? toWebhook(row) : null;
  }

  async list(project?: string | null): Promise<WebhookRecord[]> {
    let query = webhookRows(this.db);
    if (project === null) query = query.where('w.project_id', 'is', null);
    else if (project !== undefined) query = query.where('p.name', '=', project);
    return (await query.orderBy('w.id').execute()).map(toWebhook);
  }

  async update(id: string, changes: WebhookChanges): Promise<WebhookRecord | null> {
    if (!/^\d{1,18}$/.test(id)) return null;
    const set: Partial<Record<keyof WebhookTable, unknown>> = { updated_at: this.now() };
    if (changes.url !== undefined) set.url = changes.url;
    if (changes.events !== undefined) set.events = JSON.stringify(changes.events);
    if (changes.repository !== undefined) set.repository = changes.repository;
    if (changes.tag !== undefined) set.tag = changes.tag;
    if (changes.format !== undefined) set.format = changes.format;
    if (changes.headers !== undefined) set.headers = JSON.stringify(changes.headers);
    if (changes.secret !== undefined) set.secret = changes.secret;
    if (changes.enabled !== undefined) set.enabled = changes.enabled ? 1 : 0;
    const result = await this.db.updateTable('webhooks').set(set as never).where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n ? this.get(id) : null;
  }

  async delete(id: string): Promise<boolean> {
    if (!/^\d{1,18}$/.test(id)) return false;
    const result = await this.db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  private deliveryRows() {
    return deliveryRows(this.db);
  }

  async deliveries(webhookId: string, page: { offset: number; limit: number }): Promise<{ items: DeliveryRecord[]; total: number }> {
    if (!/^\d{1,18}$/.test(webhookId)) return { items: [], total: 0 };
    const [rows, count] = await Promise.all([
      this.deliveryRows().where('d.webhook_id', '=', webhookId).orderBy('d.id', 'desc').offset(page.offset).limit(page.limit).execute(),
      this.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.countAll().as('n')).where('webhook_id', '=', webhookId).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toDelivery), total: Number(count.n) };
  }

  async delivery(webhookId: string, deliveryId: string): Promise<DeliveryRecord | null> {
    if (!/^\d{1,18}$/.test(webhookId) || !/^\d{1,18}$/.test(deliveryId)) return null;
    const row = await this.deliveryRows().where('d.webhook_id', '=', webhookId).where('d.id', '=', deliveryId).executeTakeFirst();
    return row ? toDelivery(row) : null;
  }

  async enqueue(webhookId: string, eventId: string): Promise<DeliveryRecord> {
    const event = await this.db.selectFrom('events').select(['seq', 'repository']).where('id', '=', eventId).executeTakeFirstOrThrow();
    return this.deliver(this.db, webhookId, event);
  }

  async enqueueTest(webhookId: string, event: NewEvent): Promise<DeliveryRecord> {
    return this.db.transaction().execute(async (trx) => {
      const [written] = await writeEvents(trx, [event], this.now(), true);
      const row = await trx.selectFrom('events').select(['seq', 'repository']).where('id', '=', written!.id).executeTakeFirstOrThrow();
      return this.deliver(trx, webhookId, row);
    });
  }

  private async deliver(db: Db, webhookId: string, event: { seq: Id; repository: string | null }): Promise<DeliveryRecord> {
    const at = this.now();
    const row = await db
      .insertInto('webhook_deliveries')
      .values({ webhook_id: webhookId, event_seq: event.seq, ordering_key: event.repository ?? '', state: 'pending', attempts: 0, next_attempt_at: at, created_at: at })
      .returning('id')
      .executeTakeFirstOrThrow();
    return toDelivery(await deliveryRows(db).where('d.id', '=', row.id).executeTakeFirstOrThrow());
  }
}

/** The tag_history columns that say who moved a tag and where (all null without a context). */
export function movedBy(context: WriteContext | undefined) {
  return { actor: context?.actor ?? null, actor_kind: context?.actorKind ?? null, address: context?.address ?? null, node: context?.node ?? null };
}

/** Reads movedBy() back; null for rows written before 0007 or without a context. */
export function readMovedBy(row: { actor?: string | null; actor_kind?: string | null; address?: string | null; node?: string | null }): WriteContext | null {
  if (!row.actor_kind && !row.node) return null;
  return { actor: row.actor ?? null, actorKind: row.actor_kind ?? 'unknown', address: row.address ?? null, node: row.node ?? '' };
}

/** An event of a registry change in `repository` (the project is its first path component). */
function registryEvent(type: EventType, repository: string, context: WriteContext | undefined, fields: Partial<NewEvent>): NewEvent {
  return {
    type,
    actor: context?.actor ?? null,
    actorKind: context?.actorKind ?? null,
    address: context?.address ?? null,
    project: repository.split('/', 1)[0]!,
    repository,
    tag: null,
    digest: null,
    previousDigest: null,
    mediaType: null,
    size: null,
    node: context?.node ?? null,
    detail: null,
    ...fields,
  };
}

/**
 * Events of a manifest PUT: `artifact.pushed` when it stored a new manifest or pointed a tag at
 * it, and `tag.moved` (old and new digest; old null for a new tag) when the tag moved.
 */
export function manifestPutEvents(
  repository: string,
  manifest: { digest: string; mediaType: string; size: number },
  tag: string | undefined,
  stored: boolean,
  moved: { previousDigest: string | null } | null,
  context: WriteContext | undefined,
): NewEvent[] {
  const fields = { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size, tag: tag ?? null };
  const events: NewEvent[] = [];
  if (stored || moved) events.push(registryEvent('artifact.pushed', repository, context, fields));
  if (moved) events.push(registryEvent('tag.moved', repository, context, { ...fields, previousDigest: moved.previousDigest }));
  return events;
}

/** Events of a manifest deletion: `tag.deleted` for each tag that named it, then `artifact.deleted`. */
export function manifestDeleteEvents(
  repository: string,
  manifest: { digest: string; mediaType: string; size: number },
  tags: string[],
  context: WriteContext | undefined,
): NewEvent[] {
  const fields = { mediaType: manifest.mediaType, size: manifest.size };
  return [
    ...tags.map((tag) => registryEvent('tag.deleted', repository, context, { ...fields, tag, previousDigest: manifest.digest })),
    registryEvent('artifact.deleted', repository, context, { ...fields, digest: manifest.digest }),
  ];
}

/** The event of a tag deletion. */
export function tagDeleteEvent(repository: string, tag: string, previousDigest: string, context: WriteContext | undefined): NewEvent {
  return registryEvent('tag.deleted', repository, context, { tag, previousDigest });
}
