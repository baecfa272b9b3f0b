import type { ControlStore } from './control-store.js';
import type { GcQueries } from './gc-store.js';
import type { EventQueries, WebhookQueries, WriteContext, WriteOptions } from './events-store.js';
import type { PullStatsQueries, QuotaQueries, RetentionQueries } from './housekeeping-store.js';

/**
 * Registry metadata: repositories, blob links, manifests with their references, tags with their
 * history, referrers and upload sessions. Each method that changes several facts does so in one
 * transaction, so that what must be true together commits together.
 */
export interface MetadataStore {
  readonly repositories: RepositoryQueries;
  readonly blobs: BlobQueries;
  readonly manifests: ManifestQueries;
  readonly tags: TagQueries;
  readonly uploads: UploadQueries;
  /** Identity and access control: users, projects, credentials, keys, audit log. */
  readonly control: ControlStore;
  /** Per-project versions and lifecycle settings. */
  readonly lifecycle: LifecycleQueries;
  /** Garbage collection: candidates, the mark and sweep steps, runs and the one-run lease. */
  readonly gc: GcQueries;
  /** Project quotas and usage (housekeeping-store.ts). */
  readonly quotas: QuotaQueries;
  /** Pull counts per manifest and tag, written in batches. */
  readonly pulls: PullStatsQueries;
  /** Retention policies and what a retention run reads. */
  readonly retention: RetentionQueries;
  /** The transactional outbox of events and their webhook deliveries (events-store.ts). */
  readonly events: EventQueries;
  readonly webhooks: WebhookQueries;
  /**
   * Resolves once no node can answer from a read it cached before the call (scale-out nodes cache
   * hot lookups briefly; see read-cache.ts). Changes wait for this themselves, unless written
   * with `settleLater`.
   */
  settle(): Promise<void>;
  /** Checks that the database answers (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A page request over names in lexical order: items strictly after `last`, at most `limit`. */
export interface PageRequest {
  last?: string;
  limit: number;
}

export interface RepositoryQueries {
  /** Repository names in lexical order. */
  list(page: PageRequest): Promise<string[]>;
  exists(name: string): Promise<boolean>;
}

export interface BlobRecord {
  digest: string;
  size: number;
}

export interface BlobQueries {
  /** A committed blob known anywhere in the registry. */
  get(digest: string): Promise<BlobRecord | null>;
  /** A blob linked into `repository` (pullable from it). */
  getInRepository(repository: string, digest: string): Promise<BlobRecord | null>;
  /**
   * Records a committed blob (if new, else renewing its last-seen time and clearing a garbage
   * collection mark) and links it into `repository` (creating the repository). For tests and
   * tools: pushes go through `uploads.reserve` and `uploads.complete`, which pin the blob against
   * garbage collection while its bytes are written.
   */
  link(repository: string, blob: BlobRecord): Promise<void>;
  /**
   * Links a blob the registry already holds into `repository` (a mount): only while its row is
   * live (not marked by garbage collection) and `bytesPresent` confirms its bytes, checked while
   * the row is locked. Resolves to null when it cannot be mounted (the client uploads instead).
   */
  mount(repository: string, digest: string, bytesPresent: () => Promise<boolean>): Promise<BlobRecord | null>;
  /**
   * Records a stored blob (if new) without linking it anywhere: bytes that an abandoned upload
   * left at their content address, which garbage collection then removes past its grace period.
   */
  record(blob: BlobRecord): Promise<void>;
  /**
   * Unlinks a blob from a repository. Throws BlobInUseError when a manifest of the repository
   * references it. Resolves to false when it was not linked.
   */
  unlink(repository: string, digest: string): Promise<boolean>;
  /** Sum of the sizes of all committed blobs. */
  totalSize(): Promise<number>;
}

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  /** The exact bytes that were pushed. */
  content: Buffer;
  artifactType: string | null;
  subject: string | null;
  annotations: Record<string, string> | null;
}

export interface NewManifest extends ManifestRecord {
  /** Blobs the manifest references (config, layers); each must be linked into the repository. */
  blobs: string[];
  /** Manifests an index references; each must exist in the repository. */
  children: string[];
}

export interface ManifestQueries {
  get(repository: string, digest: string): Promise<ManifestRecord | null>;
  /** The manifest a tag points at. */
  getByTag(repository: string, tag: string): Promise<ManifestRecord | null>;
  /**
   * Stores a manifest with its references and, when `tag` is given, points the tag at it and
   * records the move in the tag's history, all in one transaction. Throws
   * MissingReferenceError when a referenced blob or child manifest is absent from the
   * repository. Storing a manifest that already exists only (re)tags it.
   */
  put(repository: string, manifest: NewManifest, tag?: string, options?: WriteOptions): Promise<void>;
  /**
   * Removes a manifest from a repository with the tags that point at it (recorded as moves to
   * nothing). Throws ManifestInUseError when an index of the repository references it.
   * Resolves to false when it did not exist.
   */
  delete(repository: string, digest: string, options?: WriteOptions): Promise<boolean>;
  /** Manifests of the repository whose `subject` is `digest`, optionally by artifact type. */
  referrers(repository: string, digest: string, artifactType?: string): Promise<ReferrerRecord[]>;
}

/**
 * Immutable tags, checked inside the transaction that would move or remove them: `immutable(tag)`
 * names the rule that protects a tag (or null). Moving an existing protected tag to another
 * digest, or deleting a manifest that a protected tag names, throws ImmutableTagError.
 */
export interface TagGuard {
  immutable(tag: string): string | null;
}

export interface ReferrerRecord {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

export interface TagRecord {
  name: string;
  digest: string;
  updatedAt: Date;
}

export interface TagHistoryEntry {
  tag: string;
  previousDigest: string | null;
  digest: string | null;
  at: Date;
  /** Who moved the tag and on which node; null for moves recorded before 0007_events. */
  by: WriteContext | null;
}

export interface TagQueries {
  /** Tag names of a repository in lexical order. */
  list(repository: string, page: PageRequest): Promise<string[]>;
  get(repository: string, tag: string): Promise<TagRecord | null>;
  /** Removes a tag (recorded as a move to nothing). Resolves to false when it did not exist. */
  delete(repository: string, tag: string, options?: WriteOptions): Promise<boolean>;
  /** Moves of a tag, newest first. */
  history(repository: string, tag: string): Promise<TagHistoryEntry[]>;
}

export interface LifecycleSettings {
  /** How long a tag's earlier digests stay restorable; null: the installation's default. */
  historyWindowMs: number | null;
}

export interface LifecycleQueries {
  /** A project's settings; null when the project does not exist. */
  get(project: string): Promise<LifecycleSettings | null>;
  /** Replaces a project's settings; false when the project does not exist. */
  set(project: string, settings: LifecycleSettings): Promise<boolean>;
  /** A project's immutable tag rules, oldest first ([] for unknown projects). */
  rules(project: string): Promise<TagRule[]>;
  /** Adds a rule; null when the project does not exist. */
  addRule(project: string, rule: { repository: string; tag: string; createdBy: string | null }): Promise<TagRule | null>;
  /** Removes a rule of the project; false when there is none with that id. */
  deleteRule(project: string, id: string): Promise<boolean>;
}

/** Tags matching `tag` in repositories matching `repository` (globs) never move once they exist. */
export interface TagRule {
  id: string;
  repository: string;
  tag: string;
  createdBy: string | null;
  createdAt: Date;
}

export interface UploadRecord {
  id: string;
  repository: string;
  /** Bytes received and acknowledged so far. */
  size: number;
  startedAt: Date;
  updatedAt: Date;
  /**
   * The blob that holds the acknowledged bytes when they arrived in one request and were stored
   * whole at their content address (no staging data); null when they are staged.
   */
  blobDigest: string | null;
}

/** The right to write to an upload session, from beginAppend until endAppend or completion. */
export interface AppendLease {
  id: string;
  generation: number;
}

export interface UploadQueries {
  create(upload: { id: string; repository: string }): Promise<UploadRecord>;
  get(id: string): Promise<UploadRecord | null>;
  /**
   * Takes the exclusive right to write to an upload whose acknowledged size is `offset`, for
   * `ttlMs`: two requests on one session (in two processes or on two nodes) can then never
   * interleave their bytes. Resolves to null when the size is no longer `offset` or another
   * writer holds an unexpired lease. Throws UploadSessionNotFoundError when the session is gone.
   */
  beginAppend(id: string, offset: number, ttlMs: number): Promise<AppendLease | null>;
  /**
   * `get` and `beginAppend` in one statement: takes the lease of the session whatever its size,
   * and resolves to the session as it stands under that lease. Null when there is no such session
   * or another writer holds an unexpired lease (`get` tells which).
   */
  claim(id: string, ttlMs: number): Promise<{ upload: UploadRecord; lease: AppendLease } | null>;
  /** Extends a lease during a long append; false when it was lost (expired and taken over). */
  renewAppend(lease: AppendLease, ttlMs: number): Promise<boolean>;
  /**
   * Releases a lease; with `size`, records it as the new acknowledged size (the session is then
   * fresh again), and `blobDigest` as the blob that holds those bytes (null: they are staged).
   * False when the lease was lost, in which case nothing changes.
   */
  endAppend(lease: AppendLease, size?: number, blobDigest?: string | null): Promise<boolean>;
  /**
   * Releases every write lease. Only for a node that knows no other writer is alive: an
   * embedded (single-node) deployment at start-up, whose earlier process may have died holding
   * leases. Resolves to the number released.
   */
  releaseAllLeases(): Promise<number>;
  /**
   * Ends an upload: removes the session, records the blob and links it into the upload's
   * repository, in one transaction. With a lease, only while that lease is held.
   */
  complete(id: string, blob: BlobRecord, lease?: AppendLease): Promise<void>;
  /**
   * Before a completion stores a blob's bytes: pins the blob to the session (a new session row
   * when there is no lease: a one-request upload) and records it live, clearing a garbage
   * collection mark. While pinned, GC never marks it, so bytes the completion finds or writes
   * stay until `complete` links them.
   */
  reserve(id: string, repository: string, blob: BlobRecord, lease?: AppendLease): Promise<void>;
  delete(id: string): Promise<boolean>;
  /** Sessions not written to since `before`. */
  listStale(before: Date, limit: number): Promise<UploadRecord[]>;
  count(): Promise<number>;
}

export class MissingReferenceError extends Error {
  constructor(
    readonly kind: 'blob' | 'manifest',
    readonly digest: string,
  ) {
    super(`${kind} ${digest} is not in the repository`);
    this.name = 'MissingReferenceError';
  }
}

export class BlobInUseError extends Error {
  constructor(
    readonly digest: string,
    readonly manifest: string,
  ) {
    super(`blob ${digest} is referenced by manifest ${manifest}`);
    this.name = 'BlobInUseError';
  }
}

export class ManifestInUseError extends Error {
  constructor(
    readonly digest: string,
    readonly index: string,
  ) {
    super(`manifest ${digest} is referenced by index ${index}`);
    this.name = 'ManifestInUseError';
  }
}

export class ImmutableTagError extends Error {
  constructor(
    readonly tag: string,
    readonly rule: string,
    readonly digest: string,
  ) {
    super(`tag ${tag} is immutable (rule ${rule}); it points at ${digest}`);
    this.name = 'ImmutableTagError';
  }
}

export class UploadSessionNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`upload session ${id} does not exist`);
    this.name = 'UploadSessionNotFoundError';
  }
}

/**
 * The database is unreachable, restarting or did not answer in time: the request fails with 503,
 * and succeeds again once the database is back (connections are re-opened as needed).
 */
export class MetadataUnavailableError extends Error {
  readonly dependency = 'metadata';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MetadataUnavailableError';
  }
}
