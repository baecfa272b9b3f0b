import type { ColumnType } from 'kysely';
import type { Id, Int64 } from './schema.js';

type NullableInt64 = ColumnType<number | string | null, number | null, number | null>;

/** Storage quota of a project (0006); a null limit is no limit. */
export interface ProjectQuotaTable {
  project_id: Id;
  bytes_limit: NullableInt64;
  repositories_limit: NullableInt64;
  /** At least the project's usage in bytes: raised by every link under the row's lock, lowered only by a recount. */
  used_bound: ColumnType<number | string, number | undefined, number>;
  updated_at: Int64;
}

/** Pulls of a manifest (by digest or through any tag), written in batches (0006). */
export interface ManifestPullTable {
  repository_id: Id;
  digest: string;
  pulls: Int64;
  last_pulled_at: Int64;
}

/** Pulls through a tag (0006). */
export interface TagPullTable {
  repository_id: Id;
  tag: string;
  pulls: Int64;
  last_pulled_at: Int64;
}

/** A project's retention policy (0006): JSON rules and an optional cron schedule. */
export interface RetentionPolicyTable {
  project_id: Id;
  /** JSON of RetentionRules. */
  rules: string;
  schedule: string | null;
  updated_at: Int64;
  /** The scheduled time of the last scheduled run claimed by a node (claims are unique). */
  last_run_at: NullableInt64;
}

export interface HousekeepingDatabase {
  project_quotas: ProjectQuotaTable;
  manifest_pulls: ManifestPullTable;
  tag_pulls: TagPullTable;
  retention_policies: RetentionPolicyTable;
}
