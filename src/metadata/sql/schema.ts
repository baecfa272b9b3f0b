import type { ColumnType, Generated } from 'kysely';
import type { ControlDatabase } from './control-schema.js';
import type { HousekeepingDatabase } from './housekeeping-schema.js';
import type { EventsDatabase } from './events-schema.js';

/** The SQL dialects the metadata store runs on. Migrations pick column types by it. */
export type SqlDialect = 'sqlite' | 'postgres';

/**
 * A row id. SQLite returns numbers; PostgreSQL `bigint` comes back as a string from `pg` unless
 * an int8 type parser is installed. The store treats ids as opaque values: it only passes them
 * back into queries and compares them with `sameId`.
 */
export type Id = number | string;

/**
 * A 64-bit integer (sizes, timestamps in milliseconds since the epoch). Written as a number; read
 * as whatever the driver returns, so readers must convert with `Number()` (exact up to 2^53).
 */
export type Int64 = ColumnType<number | string, number, number>;

export interface RepositoryTable {
  id: Generated<Id>;
  /** Byte-wise ordered: BINARY collation in SQLite, COLLATE "C" in PostgreSQL. */
  name: string;
  created_at: Int64;
  /** Bumped by triggers whenever a tag of the repository is created or removed (tag-list.ts). */
  tags_version: Generated<Int64>;
}

export interface BlobTable {
  digest: string;
  size: Int64;
  created_at: Int64;
  /** Last pushed, mounted or linked (0005): garbage collection's grace period counts from it. */
  seen_at: ColumnType<number | string | null, number | null | undefined, number | null>;
  /** Set by garbage collection when it unlinks the blob (0005): absent, bytes being deleted. */
  deleting_since: ColumnType<number | string | null, number | null | undefined, number | null>;
}

export interface RepositoryBlobTable {
  repository_id: Id;
  digest: string;
  created_at: Int64;
}

export interface ManifestTable {
  id: Generated<Id>;
  repository_id: Id;
  digest: string;
  media_type: string;
  artifact_type: string | null;
  subject_digest: string | null;
  /** JSON text of a string map, or null. */
  annotations: string | null;
  size: Int64;
  /** The exact pushed bytes (`blob` in SQLite, `bytea` in PostgreSQL). */
  content: Buffer;
  created_at: Int64;
}

export interface ManifestBlobTable {
  manifest_id: Id;
  digest: string;
}

export interface ManifestChildTable {
  manifest_id: Id;
  child_digest: string;
}

export interface TagTable {
  repository_id: Id;
  /** Byte-wise ordered, like repositories.name. */
  name: string;
  manifest_id: Id;
  /** When the tag last moved (or was created). */
  updated_at: Int64;
}

export interface TagHistoryTable {
  id: Generated<Id>;
  repository_id: Id;
  tag: string;
  previous_digest: string | null;
  digest: string | null;
  at: Int64;
  /** Who moved the tag and on which node (0007; null before). */
  actor?: string | null;
  actor_kind?: string | null;
  address?: string | null;
  node?: string | null;
}

export interface UploadTable {
  id: string;
  /** Repository name (the repository row may not exist until the first blob is linked). */
  repository: string;
  /** The blob a completion is storing (0005): garbage collection leaves it alone meanwhile. */
  pin_digest?: ColumnType<string | null, string | null | undefined, string | null>;
  size: Int64;
  started_at: Int64;
  updated_at: Int64;
  /** Bumped by every lease taken to write to the session. */
  append_generation: ColumnType<number | string, number | undefined, number>;
  /** When the current writer's lease ends; null when nobody writes. */
  append_expires_at: ColumnType<number | string | null, number | null | undefined, number | null>;
  /** The blob that holds the acknowledged bytes, when they were stored whole (0008); else null. */
  blob_digest: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Per-project lifecycle settings (0003); null: the default. */
export interface ProjectLifecycleTable {
  project_id: Id;
  history_window_ms: ColumnType<number | string | null, number | null, number | null>;
  updated_at: Int64;
}

/** Immutable tag rules (0004). */
export interface TagRuleTable {
  id: Generated<Id>;
  project_id: Id;
  repository: string;
  tag: string;
  created_by: string | null;
  created_at: Int64;
}

/** Registry tables, plus identity and access control (control-schema.ts). */
export interface Database extends ControlDatabase, EventsDatabase, HousekeepingDatabase {
  project_lifecycle: ProjectLifecycleTable;
  tag_rules: TagRuleTable;
  repositories: RepositoryTable;
  blobs: BlobTable;
  repository_blobs: RepositoryBlobTable;
  manifests: ManifestTable;
  manifest_blobs: ManifestBlobTable;
  manifest_children: ManifestChildTable;
  tags: TagTable;
  tag_history: TagHistoryTable;
  uploads: UploadTable;
}
