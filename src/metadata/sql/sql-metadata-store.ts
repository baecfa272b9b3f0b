import { setTimeout as sleep } from 'node:timers/promises';
import { sql, SqliteAdapter, type Kysely, type Selectable, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import {
  BlobInUseError,
  ManifestInUseError,
  MissingReferenceError,
  UploadSessionNotFoundError,
  type AppendLease,
  type BlobQueries,
  type BlobRecord,
  ImmutableTagError,
  type LifecycleQueries,
  type ManifestQueries,
  type ManifestRecord,
  type MetadataStore,
  type NewManifest,
  type PageRequest,
  type ReferrerRecord,
  type RepositoryQueries,
  type TagHistoryEntry,
  type TagQueries,
  type TagRecord,
  type UploadQueries,
  type UploadRecord,
} from '../metadata-store.js';
import type { Database, Id, UploadTable } from './schema.js';
import type { ControlStore } from '../control-store.js';
import { SqlControlStore } from './control/sql-control-store.js';
import { SqlLifecycle } from './lifecycle.js';
import { SqlGc } from './gc.js';
import type { GcQueries } from '../gc-store.js';
import { enforceQuotaOnLink, enforceQuotaOnManifest, SqlQuotas } from './quotas.js';
import { SqlPullStats } from './pull-stats.js';
import { SqlRetention } from './retention.js';
import type { PullStatsQueries, QuotaQueries, RetentionQueries } from '../housekeeping-store.js';
import { bulkInsert, listStatement, precompile, statement } from './precompiled.js';
import { TimedReadCache, VersionedReadCache, waitAtLeast, type ReadCache } from './read-cache.js';
import { repositoryHasContent } from './control/common.js';
import { TagLister } from './tag-list.js';
import { CatalogLister } from './catalog-list.js';
import { catalogKey, ListLeases, tagListKey } from './list-leases.js';
import { manifestDeleteEvents, manifestPutEvents, movedBy, readMovedBy, SqlEvents, SqlWebhooks, tagDeleteEvent, writeEvents } from './events.js';
import type { EventQueries, WebhookQueries, WriteOptions } from '../events-store.js';

export interface SqlMetadataStoreOptions {
  /** Clock in milliseconds since the epoch (tests inject one). */
  now?: () => number;
  /**
   * A number that changes whenever the database may have changed (by any process); when given,
   * manifest and blob lookups of the hot paths are cached while it stays the same (read-cache.ts).
   */
  changeVersion?: () => number;
  /**
   * Without `changeVersion` (PostgreSQL): hot lookups are cached for at most this many
   * milliseconds, and every change that could make a cached answer wrong waits as long after its
   * commit before it returns (read-cache.ts, TimedReadCache). Every node sharing the database
   * must use the same value; 0 turns the cache off.
   */
  readCacheTtlMs?: number;
}

/**
 * Builds the hot lookups' caches (none, exact, or timed) and the wait that changes owe them.
 * `settle` resolves once every entry that any node may have loaded before the call has expired.
 */
export interface ReadCaching {
  cache<V>(sizeOf: (value: V) => number): ReadCache<V> | undefined;
  settle(): Promise<void>;
  /** With the timed cache (PostgreSQL): listings kept between requests (list-leases.ts). */
  leases?: ListLeases;
}

export function readCaching(options: SqlMetadataStoreOptions, db?: Db): ReadCaching {
  const { changeVersion, readCacheTtlMs: ttl = 0 } = options;
  if (changeVersion) return { cache: (sizeOf) => new VersionedReadCache(changeVersion, { ...READ_CACHE_LIMITS, sizeOf }), settle: async () => undefined };
  if (ttl > 0) {
    return {
      cache: (sizeOf) => new TimedReadCache(ttl, { ...READ_CACHE_LIMITS, sizeOf }),
      settle: () => waitAtLeast(ttl),
      ...(db ? { leases: new ListLeases(db, ttl) } : {}),
    };
  }
  return { cache: () => undefined, settle: async () => undefined };
}

/** After a commit: waits out the listing leases of what it added (list-leases.ts). */
async function waitOutListings(leases: ListLeases | undefined, repository: string, added: { tag: boolean; repository: boolean }): Promise<void> {
  if (!leases || !(added.tag || added.repository)) return;
  await leases.waitOut([...(added.tag ? [tagListKey(repository)] : []), ...(added.repository ? [catalogKey] : [])]);
}

/** Bounds of each hot-path read cache: a few thousand typical manifests, at most 4 MiB. */
const READ_CACHE_LIMITS = { maxEntries: 4096, maxBytes: 4 * 1024 * 1024 };

/** Rows per multi-row INSERT and values per IN list: far below SQLite's and PostgreSQL's limits. */
const CHUNK = 500;

/** PostgreSQL's serialization_failure and deadlock_detected: the transaction can simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const TRANSACTION_ATTEMPTS = 10;

type Db = Kysely<Database>;

/**
 * MetadataStore over Kysely. The queries are dialect-neutral (SQLite and PostgreSQL): upserts use
 * ON CONFLICT, RETURNING is supported by both, byte-wise name order comes from the column
 * collation set by the migrations, and 64-bit values are read through `Number()`.
 *
 * Concurrency: every transaction that checks facts of a repository before changing them starts
 * by writing the repository row (`ensureRepository` / `lockRepository`). In PostgreSQL that row
 * lock serialises writers of one repository, so a check (blob linked, child present, tag's
 * previous digest) cannot be invalidated before commit. SQLite transactions begin IMMEDIATE,
 * holding the database's one write lock throughout (sqlite-lock-wait.ts).
 */
export class SqlMetadataStore implements MetadataStore {
  readonly repositories: RepositoryQueries;
  readonly blobs: BlobQueries;
  readonly manifests: ManifestQueries;
  readonly tags: TagQueries;
  readonly uploads: UploadQueries;
  readonly control: ControlStore;
  readonly lifecycle: LifecycleQueries;
  readonly events: EventQueries;
  readonly webhooks: WebhookQueries;
  readonly gc: GcQueries;
  readonly quotas: QuotaQueries;
  readonly pulls: PullStatsQueries;
  readonly retention: RetentionQueries;
  readonly settle: () => Promise<void>;

  constructor(
    private readonly db: Db,
    options: SqlMetadataStoreOptions = {},
  ) {
    const now = options.now ?? Date.now;
    const caching = readCaching(options, db);
    this.settle = caching.settle;
    this.repositories = new SqlRepositories(db, caching.leases);
    this.blobs = new SqlBlobs(db, now, caching);
    this.manifests = new SqlManifests(db, now, caching);
    this.tags = new SqlTags(db, now, caching);
    this.uploads = new SqlUploads(db, now, caching.leases);
    this.control = new SqlControlStore(db, now, caching.settle);
    this.lifecycle = new SqlLifecycle(db, now);
    this.events = new SqlEvents(db, now, (work) => transaction(db, work));
    this.webhooks = new SqlWebhooks(db, now);
    this.gc = new SqlGc(db, now, caching.settle);
    this.quotas = new SqlQuotas(db, now);
    this.pulls = new SqlPullStats(db);
    this.retention = new SqlRetention(db, now);
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

class SqlRepositories implements RepositoryQueries {
  private readonly lister: CatalogLister | undefined;

  constructor(
    private readonly db: Db,
    leases?: ListLeases,
  ) {
    this.lister = leases ? new CatalogLister(leases, (page) => this.read(page)) : undefined;
  }

  /** Repositories with at least one manifest or linked blob, by name in byte order. */
  async list(page: PageRequest): Promise<string[]> {
    if (page.limit <= 0) return [];
    return this.lister ? this.lister.list(page) : this.read(page);
  }

  private async read(page: PageRequest): Promise<string[]> {
    let query = this.db
      .selectFrom('repositories as r')
      .select('r.name')
      .where(repositoryHasContent);
    if (page.last !== undefined) query = query.where('r.name', '>', page.last);
    const rows = await query.orderBy('r.name').limit(page.limit).execute();
    return rows.map((row) => row.name);
  }

  /** Whether the repository has content (a manifest or a linked blob), as `list` counts it. */
  async exists(name: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('repositories as r')
      .select('r.id')
      .where('r.name', '=', name)
      .where(repositoryHasContent)
      .executeTakeFirst();
    return row !== undefined;
  }
}

// Hot-path queries, compiled once per store (see precompile).
const blobInRepositoryQuery = (db: Db) =>
  precompile(db, (db) =>
    db
      .selectFrom('repository_blobs as rb')
      .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
      .innerJoin('blobs as b', 'b.digest', 'rb.digest')
      .select(['b.digest', 'b.size'])
      .where('r.name', '=', '$repository')
      .where('rb.digest', '=', '$digest'),
  );

const manifestByDigestQuery = (db: Db) =>
  precompile(db, (db) =>
    db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select(manifestColumns)
      .where('r.name', '=', '$repository')
      .where('m.digest', '=', '$digest'),
  );

const manifestByTagQuery = (db: Db) =>
  precompile(db, (db) =>
    db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .innerJoin('manifests as m', 'm.id', 't.manifest_id')
      .select(manifestColumns)
      .where('r.name', '=', '$repository')
      .where('t.name', '=', '$tag'),
  );

class SqlBlobs implements BlobQueries {
  private readonly blobInRepository: ReturnType<typeof blobInRepositoryQuery>;
  private readonly cache: ReadCache<BlobRecord> | undefined;
  private readonly settle: () => Promise<void>;
  private readonly leases: ListLeases | undefined;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    caching: ReadCaching,
  ) {
    this.blobInRepository = blobInRepositoryQuery(db);
    this.cache = caching.cache((blob) => 128 + blob.digest.length);
    this.settle = caching.settle;
    this.leases = caching.leases;
  }

  async get(digest: string): Promise<BlobRecord | null> {
    const row = await this.db
      .selectFrom('blobs')
      .select(['digest', 'size'])
      .where('digest', '=', digest)
      .where('deleting_since', 'is', null)
      .executeTakeFirst();
    return row ? { digest: row.digest, size: Number(row.size) } : null;
  }

  /** Hot path (blob HEAD/GET): one query, or none while the database is unchanged. */
  async getInRepository(repository: string, digest: string): Promise<BlobRecord | null> {
    const load = async () => {
      const row = await this.blobInRepository(repository, digest);
      return row ? { digest: row.digest, size: Number(row.size) } : null;
    };
    return this.cache ? this.cache.get(`${repository}\n${digest}`, load) : load();
  }


  async link(repository: string, blob: BlobRecord): Promise<void> {
    const added = await transaction(this.db, (trx) => linkBlob(trx, repository, blob, this.now()));
    await waitOutListings(this.leases, repository, { tag: false, repository: added });
  }

  async record(blob: BlobRecord): Promise<void> {
    await this.db
      .insertInto('blobs')
      .values({ digest: blob.digest, size: blob.size, created_at: this.now(), seen_at: this.now() })
      .onConflict((oc) => oc.column('digest').doNothing())
      .execute();
  }

  async mount(repository: string, digest: string, bytesPresent: () => Promise<boolean>): Promise<BlobRecord | null> {
    const { mounted, added } = await transaction(this.db, async (trx) => {
      const at = this.now();
      const { id: repositoryId, empty } = await ensureRepository(trx, repository, at);
      // Write-locks the blob's row while it is live: garbage collection marks it, and deletes
      // its bytes, only under that lock, so bytes present now stay until this link commits.
      const live = await trx
        .updateTable('blobs')
        .set({ seen_at: at })
        .where('digest', '=', digest)
        .where('deleting_since', 'is', null)
        .returning('size')
        .executeTakeFirst();
      if (!live || !(await bytesPresent())) return { mounted: null, added: false };
      await enforceQuotaOnLink(trx, repository, repositoryId, { digest, size: Number(live.size) });
      await trx
        .insertInto('repository_blobs')
        .values({ repository_id: repositoryId, digest, created_at: at })
        .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing())
        .execute();
      return { mounted: { digest, size: Number(live.size) }, added: empty };
    });
    await waitOutListings(this.leases, repository, { tag: false, repository: added });
    return mounted;
  }

  async unlink(repository: string, digest: string): Promise<boolean> {
    const unlinked = await transaction(this.db, async (trx) => {
      const repositoryId = await lockRepository(trx, repository);
      if (repositoryId === undefined) return false;
      const user = await trx
        .selectFrom('manifest_blobs as mb')
        .innerJoin('manifests as m', 'm.id', 'mb.manifest_id')
        .select('m.digest')
        .where('m.repository_id', '=', repositoryId)
        .where('mb.digest', '=', digest)
        .orderBy('m.digest')
        .limit(1)
        .executeTakeFirst();
      if (user) throw new BlobInUseError(digest, user.digest);
      const result = await trx
        .deleteFrom('repository_blobs')
        .where('repository_id', '=', repositoryId)
        .where('digest', '=', digest)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
    if (unlinked) await this.settle();
    return unlinked;
  }

  async totalSize(): Promise<number> {
    const row = await this.db
      .selectFrom('blobs')
      .select(sql<number | string>`coalesce(sum(size), 0)`.as('total'))
      .executeTakeFirstOrThrow();
    return Number(row.total);
  }
}

const manifestColumns = [
  'm.digest',
  'm.media_type',
  'm.size',
  'm.content',
  'm.artifact_type',
  'm.subject_digest',
  'm.annotations',
] as const;

type ManifestRow = Pick<
  Selectable<Database['manifests']>,
  'digest' | 'media_type' | 'size' | 'content' | 'artifact_type' | 'subject_digest' | 'annotations'
>;

class SqlManifests implements ManifestQueries {
  private readonly manifestByDigest: ReturnType<typeof manifestByDigestQuery>;
  private readonly manifestByTag: ReturnType<typeof manifestByTagQuery>;
  private readonly cache: ReadCache<ManifestRecord> | undefined;
  private readonly settle: () => Promise<void>;
  private readonly leases: ListLeases | undefined;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    caching: ReadCaching,
  ) {
    this.manifestByDigest = manifestByDigestQuery(db);
    this.manifestByTag = manifestByTagQuery(db);
    this.cache = caching.cache((manifest) => 256 + manifest.content.length);
    this.settle = caching.settle;
    this.leases = caching.leases;
  }

  /** Hot path (manifest GET by digest): one precompiled query, or none while nothing changed. */
  async get(repository: string, digest: string): Promise<ManifestRecord | null> {
    const load = async () => {
      const row = await this.manifestByDigest(repository, digest);
      return row ? toManifestRecord(row) : null;
    };
    // '@' cannot occur in a tag, so the two kinds of key never collide.
    return this.cache ? this.cache.get(`${repository}@${digest}`, load) : load();
  }

  /** Hot path (manifest GET by tag): one precompiled query, or none while nothing changed. */
  async getByTag(repository: string, tag: string): Promise<ManifestRecord | null> {
    const load = async () => {
      const row = await this.manifestByTag(repository, tag);
      return row ? toManifestRecord(row) : null;
    };
    return this.cache ? this.cache.get(`${repository}:${tag}`, load) : load();
  }



  async put(repository: string, manifest: NewManifest, tag?: string, options?: WriteOptions): Promise<void> {
    const { moved, addedRepository } = await transaction(this.db, async (trx) => {
      const { id: repositoryId, empty } = await ensureRepository(trx, repository, this.now());
      // Read the clock once the repository is locked, so that moves of a tag get their times in
      // the order they commit.
      const at = this.now();
      let manifestId = await findManifestId(trx, repositoryId, manifest.digest);
      const stored = manifestId === undefined;
      // A stored manifest is the repository's content: an empty repository joins the catalog.
      const addedRepository = stored && empty;
      if (manifestId === undefined) {
        await enforceQuotaOnManifest(trx, repository, repositoryId);
        // A stored manifest's references were checked when it was stored and are held since
        // (unlink and delete refuse while it uses them), so only a new one is checked.
        const blobs = unique(manifest.blobs);
        const children = unique(manifest.children);
        const missingBlob = await firstMissing(blobs, async (chunk) => {
          const { rows } = await linkedBlobsAmong(trx, { repositoryId }, chunk);
          return rows.map((row) => row.digest);
        });
        if (missingBlob !== undefined) throw new MissingReferenceError('blob', missingBlob);
        const missingChild = await firstMissing(children, async (chunk) => {
          const { rows } = await manifestsAmong(trx, { repositoryId }, chunk);
          return rows.map((row) => row.digest);
        });
        if (missingChild !== undefined) throw new MissingReferenceError('manifest', missingChild);

        const inserted = (
          await insertManifest(trx, {
            repositoryId,
            digest: manifest.digest,
            mediaType: manifest.mediaType,
            artifactType: manifest.artifactType,
            subject: manifest.subject,
            annotations: manifest.annotations === null ? null : JSON.stringify(manifest.annotations),
            size: manifest.size,
            content: manifest.content,
            at,
          })
        ).rows[0];
        if (!inserted) throw new Error(`manifest ${manifest.digest}: the insert returned no row`);
        const id = inserted.id;
        manifestId = id;
        if (blobs.length > 0) await insertManifestBlobs(trx, blobs.map((digest) => [id, digest]));
        if (children.length > 0) await insertManifestChildren(trx, children.map((child) => [id, child]));
      }
      const moved = tag === undefined ? null : await pointTag(trx, repositoryId, tag, manifestId, manifest.digest, at, options);
      // The outbox: the events commit with the change, or neither does.
      await writeEvents(trx, manifestPutEvents(repository, manifest, tag, stored, moved, options?.context), at);
      return { moved, addedRepository };
    });
    // A tag that pointed elsewhere may be cached (by its name) with its old manifest.
    if (moved?.previousDigest) await this.settle();
    await waitOutListings(this.leases, repository, { tag: moved !== null && moved.previousDigest === null, repository: addedRepository });
  }

  async delete(repository: string, digest: string, options?: WriteOptions): Promise<boolean> {
    const deleted = await transaction(this.db, async (trx) => {
      const repositoryId = await lockRepository(trx, repository);
      if (repositoryId === undefined) return false;
      const manifestId = await findManifestId(trx, repositoryId, digest);
      if (manifestId === undefined) return false;
      const index = await trx
        .selectFrom('manifest_children as c')
        .innerJoin('manifests as m', 'm.id', 'c.manifest_id')
        .select('m.digest')
        .where('m.repository_id', '=', repositoryId)
        .where('c.child_digest', '=', digest)
        .where('m.id', '<>', manifestId)
        .orderBy('m.digest')
        .limit(1)
        .executeTakeFirst();
      if (index) throw new ManifestInUseError(digest, index.digest);

      const at = this.now();
      const tags = await trx
        .selectFrom('tags')
        .select('name')
        .where('manifest_id', '=', manifestId)
        .orderBy('name')
        .execute();
      for (const t of options?.immutable ? tags : []) {
        const rule = options!.immutable!(t.name);
        if (rule !== null) throw new ImmutableTagError(t.name, rule, digest);
      }
      for (const chunk of chunks(tags)) {
        await trx
          .insertInto('tag_history')
          .values(
            chunk.map((t) => ({
              repository_id: repositoryId,
              tag: t.name,
              previous_digest: digest,
              digest: null,
              at,
              ...movedBy(options?.context),
            })),
          )
          .execute();
      }
      const deleted = await trx.selectFrom('manifests').select(['media_type', 'size']).where('id', '=', manifestId).executeTakeFirstOrThrow();
      const described = { digest, mediaType: deleted.media_type, size: Number(deleted.size) };
      await writeEvents(trx, manifestDeleteEvents(repository, described, tags.map((t) => t.name), options?.context), at);
      await trx.deleteFrom('tags').where('manifest_id', '=', manifestId).execute();
      // manifest_blobs and manifest_children go with it (ON DELETE CASCADE).
      await trx.deleteFrom('manifests').where('id', '=', manifestId).execute();
      return true;
    });
    if (deleted && !options?.settleLater) await this.settle();
    return deleted;
  }

  async referrers(repository: string, digest: string, artifactType?: string): Promise<ReferrerRecord[]> {
    let query = this.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select(['m.digest', 'm.media_type', 'm.size', 'm.artifact_type', 'm.annotations'])
      .where('r.name', '=', repository)
      .where('m.subject_digest', '=', digest);
    if (artifactType !== undefined) query = query.where('m.artifact_type', '=', artifactType);
    const rows = await query.orderBy('m.digest').execute();
    return rows.map((row) => ({
      digest: row.digest,
      mediaType: row.media_type,
      size: Number(row.size),
      artifactType: row.artifact_type,
      annotations: parseAnnotations(row.annotations),
    }));
  }
}

class SqlTags implements TagQueries {
  private readonly lister: TagLister;
  /** Waits out the hot lookups' caches after a change (see readCaching). */
  private readonly settle: () => Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    caching: ReadCaching,
  ) {
    this.settle = caching.settle;
    this.lister = new TagLister(db, undefined, caching.leases);
  }

  async list(repository: string, page: PageRequest): Promise<string[]> {
    return this.lister.list(repository, page);
  }

  async get(repository: string, tag: string): Promise<TagRecord | null> {
    const row = await this.db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .innerJoin('manifests as m', 'm.id', 't.manifest_id')
      .select(['t.name', 'm.digest', 't.updated_at'])
      .where('r.name', '=', repository)
      .where('t.name', '=', tag)
      .executeTakeFirst();
    return row ? { name: row.name, digest: row.digest, updatedAt: new Date(Number(row.updated_at)) } : null;
  }

  async delete(repository: string, tag: string, options?: WriteOptions): Promise<boolean> {
    const deleted = await transaction(this.db, async (trx) => {
      const repositoryId = await lockRepository(trx, repository);
      if (repositoryId === undefined) return false;
      const current = await currentTag(trx, repositoryId, tag);
      if (!current) return false;
      await trx
        .deleteFrom('tags')
        .where('repository_id', '=', repositoryId)
        .where('name', '=', tag)
        .execute();
      await trx
        .insertInto('tag_history')
        .values({
          repository_id: repositoryId,
          tag,
          previous_digest: current.digest,
          digest: null,
          at: this.now(),
          ...movedBy(options?.context),
        })
        .execute();
      await writeEvents(trx, [tagDeleteEvent(repository, tag, current.digest, options?.context)], this.now());
      return true;
    });
    if (deleted) await this.settle();
    return deleted;
  }

  async history(repository: string, tag: string): Promise<TagHistoryEntry[]> {
    const rows = await this.db
      .selectFrom('tag_history as h')
      .innerJoin('repositories as r', 'r.id', 'h.repository_id')
      .select(['h.tag', 'h.previous_digest', 'h.digest', 'h.at', 'h.actor', 'h.actor_kind', 'h.address', 'h.node'])
      .where('r.name', '=', repository)
      .where('h.tag', '=', tag)
      // Insertion order is commit order: every move of a repository's tags is written while its
      // repository row is locked. (Times from several nodes' clocks may disagree.)
      .orderBy('h.id', 'desc')
      .execute();
    return rows.map((row) => ({
      tag: row.tag,
      previousDigest: row.previous_digest,
      digest: row.digest,
      at: new Date(Number(row.at)),
      by: readMovedBy(row),
    }));
  }
}

// The statements of an upload's requests (POST, PUT, PATCH), compiled once (see statement).
const insertUpload = statement(['id', 'repository', 'at'], (db: Db, p) =>
  db.insertInto('uploads').values({ id: p.id, repository: p.repository, size: 0, started_at: p.at, updated_at: p.at }),
);
const selectUpload = statement(['id'], (db: Db, p) => db.selectFrom('uploads').selectAll().where('id', '=', p.id));
const takeLease = statement(['id', 'offset', 'at', 'expires'], (db: Db, p) =>
  db
    .updateTable('uploads')
    .set({ append_generation: sql<number>`append_generation + 1`, append_expires_at: p.expires, updated_at: p.at })
    .where('id', '=', p.id)
    .where('size', '=', p.offset)
    .where((eb) => eb.or([eb('append_expires_at', 'is', null), eb('append_expires_at', '<', p.at)]))
    .returning('append_generation'),
);
const claimLease = statement(['id', 'at', 'expires'], (db: Db, p) =>
  db
    .updateTable('uploads')
    .set({ append_generation: sql<number>`append_generation + 1`, append_expires_at: p.expires, updated_at: p.at })
    .where('id', '=', p.id)
    .where((eb) => eb.or([eb('append_expires_at', 'is', null), eb('append_expires_at', '<', p.at)]))
    .returningAll(),
);
const releaseLease = statement(['id', 'generation'], (db: Db, p) =>
  heldLease(db.updateTable('uploads').set({ append_expires_at: null }), p),
);
const releaseLeaseWithSize = statement(['id', 'generation', 'size', 'blobDigest', 'at'], (db: Db, p) =>
  heldLease(db.updateTable('uploads').set({ append_expires_at: null, size: p.size, blob_digest: p.blobDigest, updated_at: p.at }), p),
);
const pinUnderLease = statement(['id', 'generation', 'digest', 'at'], (db: Db, p) =>
  heldLease(db.updateTable('uploads').set({ pin_digest: p.digest, updated_at: p.at }), p),
);
const insertPin = statement(['id', 'repository', 'size', 'digest', 'at'], (db: Db, p) =>
  db.insertInto('uploads').values({ id: p.id, repository: p.repository, size: p.size, started_at: p.at, updated_at: p.at, pin_digest: p.digest }),
);
const deleteUpload = statement(['id'], (db: Db, p) => db.deleteFrom('uploads').where('id', '=', p.id).returning('repository'));
const deleteUploadUnderLease = statement(['id', 'generation'], (db: Db, p) =>
  db.deleteFrom('uploads').where('id', '=', p.id).where('append_generation', '=', p.generation).where('append_expires_at', 'is not', null).returning('repository'),
);

class SqlUploads implements UploadQueries {
  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    private readonly leases?: ListLeases,
  ) {}

  async create(upload: { id: string; repository: string }): Promise<UploadRecord> {
    const at = this.now();
    await insertUpload(this.db, { id: upload.id, repository: upload.repository, at });
    return toUploadRecord({ id: upload.id, repository: upload.repository, size: 0, started_at: at, updated_at: at, append_generation: 0, append_expires_at: null, blob_digest: null });
  }

  async get(id: string): Promise<UploadRecord | null> {
    const row = (await selectUpload(this.db, { id })).rows[0];
    return row ? toUploadRecord(row) : null;
  }

  async beginAppend(id: string, offset: number, ttlMs: number): Promise<AppendLease | null> {
    const at = this.now();
    const row = (await takeLease(this.db, { id, offset, at, expires: at + ttlMs })).rows[0];
    if (row) return { id, generation: Number(row.append_generation) };
    if (!(await this.get(id))) throw new UploadSessionNotFoundError(id);
    return null;
  }

  async claim(id: string, ttlMs: number): Promise<{ upload: UploadRecord; lease: AppendLease } | null> {
    const at = this.now();
    const row = (await claimLease(this.db, { id, at, expires: at + ttlMs })).rows[0];
    return row ? { upload: toUploadRecord(row), lease: { id, generation: Number(row.append_generation) } } : null;
  }

  async renewAppend(lease: AppendLease, ttlMs: number): Promise<boolean> {
    const at = this.now();
    const result = await heldLease(this.db.updateTable('uploads').set({ append_expires_at: at + ttlMs, updated_at: at }), lease).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async endAppend(lease: AppendLease, size?: number, blobDigest: string | null = null): Promise<boolean> {
    const result =
      size === undefined
        ? await releaseLease(this.db, lease)
        : await releaseLeaseWithSize(this.db, { ...lease, size, blobDigest, at: this.now() });
    return (result.numAffectedRows ?? 0n) > 0n;
  }

  async releaseAllLeases(): Promise<number> {
    const result = await this.db.updateTable('uploads').set({ append_expires_at: null }).where('append_expires_at', 'is not', null).executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async complete(id: string, blob: BlobRecord, lease?: AppendLease): Promise<void> {
    const added = await transaction(this.db, async (trx) => {
      const removed = lease ? await deleteUploadUnderLease(trx, lease) : await deleteUpload(trx, { id });
      const upload = removed.rows[0];
      if (!upload) throw new UploadSessionNotFoundError(id);
      return { repository: upload.repository, first: await linkBlob(trx, upload.repository, blob, this.now()) };
    });
    await waitOutListings(this.leases, added.repository, { tag: false, repository: added.first });
  }

  async reserve(id: string, repository: string, blob: BlobRecord, lease?: AppendLease): Promise<void> {
    await transaction(this.db, async (trx) => {
      const at = this.now();
      if (lease) {
        const pinned = await pinUnderLease(trx, { ...lease, digest: blob.digest, at });
        if (!pinned.numAffectedRows) throw new UploadSessionNotFoundError(id);
      } else {
        await insertPin(trx, { id, repository, size: blob.size, digest: blob.digest, at });
      }
      await upsertLiveBlob(trx, blob, at);
    });
  }

  async delete(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('uploads').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listStale(before: Date, limit: number): Promise<UploadRecord[]> {
    if (limit <= 0) return [];
    const rows = await this.db
      .selectFrom('uploads')
      .selectAll()
      .where('updated_at', '<', before.getTime())
      .orderBy('updated_at')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toUploadRecord);
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('uploads')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

/**
 * Runs `work` in a transaction, again (after a short random pause) when the database aborted it
 * as a serialization failure or a deadlock victim: `work` only reads and writes through `trx`,
 * so a rerun starts from scratch. Other errors (and the domain errors thrown by `work`) pass.
 */
export async function transaction<T>(db: Db, work: (trx: Db) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (attempt >= TRANSACTION_ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) throw error;
      // Full jitter, growing to at most 1 s: contenders spread out instead of colliding again.
      await sleep(Math.random() * Math.min(1000, 10 * 2 ** attempt));
    }
  }
}

/** Restricts an update of `uploads` to the session while `lease` is still held. */
function heldLease<Q extends UpdateQueryBuilder<Database, 'uploads', 'uploads', UpdateResult>>(query: Q, lease: AppendLease) {
  return query
    .where('id', '=', lease.id)
    .where('append_generation', '=', lease.generation)
    .where('append_expires_at', 'is not', null);
}

/** Whether the repository row has no content (as repositoryHasContent counts it). */
const repositoryIsEmpty = sql<boolean | number>`not (exists (select 1 from manifests where manifests.repository_id = repositories.id)
                                                    or exists (select 1 from repository_blobs where repository_blobs.repository_id = repositories.id))`;
// PostgreSQL: an upsert that also write-locks an existing row (a no-op update). The subquery
// sees the statement's snapshot: the content from before it.
const upsertRepository = statement(['name', 'at'], (db: Db, p) =>
  db
    .insertInto('repositories')
    .values({ name: p.name, created_at: p.at })
    .onConflict((oc) => oc.column('name').doUpdateSet({ name: (eb) => eb.ref('excluded.name') }))
    .returning(['id', repositoryIsEmpty.as('empty')]),
);
// SQLite: the transaction holds the database's write lock already; a no-op update would only
// rewrite the row's and the name index's pages (two WAL frames per blob link).
const insertRepositoryIfMissing = statement(['name', 'at'], (db: Db, p) =>
  db
    .insertInto('repositories')
    .values({ name: p.name, created_at: p.at })
    .onConflict((oc) => oc.column('name').doNothing()),
);
const selectRepository = statement(['name'], (db: Db, p) => db.selectFrom('repositories').select(['id', repositoryIsEmpty.as('empty')]).where('name', '=', p.name));

/**
 * Creates the repository row if needed and write-locks it; resolves to its id, and whether it
 * had no content before (content added now puts it in the catalog).
 */
async function ensureRepository(trx: Db, name: string, at: number): Promise<{ id: Id; empty: boolean }> {
  let row: { id: Id; empty: boolean | number } | undefined;
  if (trx.getExecutor().adapter instanceof SqliteAdapter) {
    await insertRepositoryIfMissing(trx, { name, at });
    row = (await selectRepository(trx, { name })).rows[0];
  } else {
    row = (await upsertRepository(trx, { name, at })).rows[0];
  }
  if (!row) throw new Error(`repository ${name}: the upsert returned no row`);
  return { id: row.id, empty: Boolean(row.empty) };
}

/** Write-locks an existing repository row (a no-op update); undefined when there is none. */
async function lockRepository(trx: Db, name: string): Promise<Id | undefined> {
  const row = await trx
    .updateTable('repositories')
    .set((eb) => ({ name: eb.ref('name') }))
    .where('name', '=', name)
    .returning('id')
    .executeTakeFirst();
  return row?.id;
}

const insertRepositoryBlob = statement(['repositoryId', 'digest', 'at'], (db: Db, p) =>
  db
    .insertInto('repository_blobs')
    .values({ repository_id: p.repositoryId, digest: p.digest, created_at: p.at })
    .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing()),
);
const upsertBlob = statement(['digest', 'size', 'at'], (db: Db, p) =>
  db
    .insertInto('blobs')
    .values({ digest: p.digest, size: p.size, created_at: p.at, seen_at: p.at })
    .onConflict((oc) => oc.column('digest').doUpdateSet({ seen_at: (eb) => eb.ref('excluded.seen_at'), deleting_since: null })),
);

/** Links a blob to a repository; resolves to whether the repository had no content before. */
async function linkBlob(trx: Db, repository: string, blob: BlobRecord, at: number): Promise<boolean> {
  const { id: repositoryId, empty } = await ensureRepository(trx, repository, at);
  await enforceQuotaOnLink(trx, repository, repositoryId, blob);
  await upsertLiveBlob(trx, blob, at);
  await insertRepositoryBlob(trx, { repositoryId, digest: blob.digest, at });
  return empty;
}

/**
 * Records a blob whose bytes the caller stores or has stored, and renews the time from which
 * garbage collection's grace period counts. Clears GC's `deleting` mark: the caller (a
 * completion, under its pin) writes the bytes again if GC deleted them (see src/control/gc).
 */
async function upsertLiveBlob(trx: Db, blob: BlobRecord, at: number): Promise<void> {
  await upsertBlob(trx, { digest: blob.digest, size: blob.size, at });
}

// The statements of a manifest push, compiled once (see statement, listStatement, bulkInsert).
const linkedBlobsAmong = listStatement(['repositoryId'], (db: Db, p, digests) =>
  db.selectFrom('repository_blobs').select('digest').where('repository_id', '=', p.repositoryId).where('digest', 'in', digests),
);
const manifestsAmong = listStatement(['repositoryId'], (db: Db, p, digests) =>
  db.selectFrom('manifests').select('digest').where('repository_id', '=', p.repositoryId).where('digest', 'in', digests),
);
const insertManifestBlobs = bulkInsert<Database>('manifest_blobs', ['manifest_id', 'digest']);
const insertManifestChildren = bulkInsert<Database>('manifest_children', ['manifest_id', 'child_digest']);
const insertManifest = statement(['repositoryId', 'digest', 'mediaType', 'artifactType', 'subject', 'annotations', 'size', 'content', 'at'], (db: Db, p) =>
  db
    .insertInto('manifests')
    .values({
      repository_id: p.repositoryId,
      digest: p.digest,
      media_type: p.mediaType,
      artifact_type: p.artifactType,
      subject_digest: p.subject,
      annotations: p.annotations,
      size: p.size,
      content: p.content,
      created_at: p.at,
    })
    .returning('id'),
);
const selectManifestId = statement(['repositoryId', 'digest'], (db: Db, p) =>
  db.selectFrom('manifests').select('id').where('repository_id', '=', p.repositoryId).where('digest', '=', p.digest),
);
const selectTag = statement(['repositoryId', 'tag'], (db: Db, p) =>
  db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select(['t.manifest_id', 'm.digest'])
    .where('t.repository_id', '=', p.repositoryId)
    .where('t.name', '=', p.tag),
);
const upsertTag = statement(['repositoryId', 'tag', 'manifestId', 'at'], (db: Db, p) =>
  db
    .insertInto('tags')
    .values({ repository_id: p.repositoryId, name: p.tag, manifest_id: p.manifestId, updated_at: p.at })
    .onConflict((oc) =>
      oc.columns(['repository_id', 'name']).doUpdateSet({
        manifest_id: (eb) => eb.ref('excluded.manifest_id'),
        updated_at: (eb) => eb.ref('excluded.updated_at'),
      }),
    ),
);
const insertTagMove = statement(['repositoryId', 'tag', 'previousDigest', 'digest', 'at', 'actor', 'actorKind', 'address', 'node'], (db: Db, p) =>
  db.insertInto('tag_history').values({
    repository_id: p.repositoryId,
    tag: p.tag,
    previous_digest: p.previousDigest,
    digest: p.digest,
    at: p.at,
    actor: p.actor,
    actor_kind: p.actorKind,
    address: p.address,
    node: p.node,
  }),
);

async function findManifestId(trx: Db, repositoryId: Id, digest: string): Promise<Id | undefined> {
  return (await selectManifestId(trx, { repositoryId, digest })).rows[0]?.id;
}

async function currentTag(
  trx: Db,
  repositoryId: Id,
  tag: string,
): Promise<{ manifestId: Id; digest: string } | undefined> {
  const row = (await selectTag(trx, { repositoryId, tag })).rows[0];
  return row ? { manifestId: row.manifest_id, digest: row.digest } : undefined;
}

/**
 * Points a tag at a manifest; records the move in the history only when the tag moved. Resolves
 * to the digest it named before (null for a new tag), or null when it did not move.
 */
async function pointTag(
  trx: Db,
  repositoryId: Id,
  tag: string,
  manifestId: Id,
  digest: string,
  at: number,
  options?: WriteOptions,
): Promise<{ previousDigest: string | null } | null> {
  const current = await currentTag(trx, repositoryId, tag);
  if (current && sameId(current.manifestId, manifestId)) return null;
  const rule = current && options?.immutable ? options.immutable(tag) : null;
  if (current && rule !== null) throw new ImmutableTagError(tag, rule, current.digest);
  await upsertTag(trx, { repositoryId, tag, manifestId, at });
  const by = movedBy(options?.context);
  await insertTagMove(trx, { repositoryId, tag, previousDigest: current?.digest ?? null, digest, at, actor: by.actor, actorKind: by.actor_kind, address: by.address, node: by.node });
  return { previousDigest: current?.digest ?? null };
}

function sameId(a: Id, b: Id): boolean {
  return String(a) === String(b);
}

function toManifestRecord(row: ManifestRow): ManifestRecord {
  return {
    digest: row.digest,
    mediaType: row.media_type,
    size: Number(row.size),
    content: Buffer.isBuffer(row.content) ? row.content : Buffer.from(row.content),
    artifactType: row.artifact_type,
    subject: row.subject_digest,
    annotations: parseAnnotations(row.annotations),
  };
}

function parseAnnotations(text: string | null): Record<string, string> | null {
  return text === null ? null : (JSON.parse(text) as Record<string, string>);
}

function toUploadRecord(row: Omit<Selectable<UploadTable>, 'pin_digest'>): UploadRecord {
  return {
    id: row.id,
    repository: row.repository,
    size: Number(row.size),
    startedAt: new Date(Number(row.started_at)),
    updatedAt: new Date(Number(row.updated_at)),
    blobDigest: row.blob_digest ?? null,
  };
}

/** The first of `wanted` (in order) that `present` does not return. */
async function firstMissing(
  wanted: string[],
  present: (chunk: string[]) => Promise<string[]>,
): Promise<string | undefined> {
  for (const chunk of chunks(wanted)) {
    const found = new Set(await present(chunk));
    const missing = chunk.find((digest) => !found.has(digest));
    if (missing !== undefined) return missing;
  }
  return undefined;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function* chunks<T>(values: T[], size = CHUNK): Generator<T[]> {
  for (let i = 0; i < values.length; i += size) yield values.slice(i, i + size);
}
