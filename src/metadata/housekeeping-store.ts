/**
 * Quotas, usage, pull statistics and retention policies of projects (0006). Implemented by the
 * SQL store in sql/quotas.ts, sql/pull-stats.ts and sql/retention.ts.
 */

/** Limits of a project; null: no limit. */
export interface QuotaLimits {
  bytes: number | null;
  repositories: number | null;
}

/** What a project uses: unique blobs (a blob in two of its repositories counts once), repositories with content. */
export interface ProjectUsage {
  bytes: number;
  blobs: number;
  repositories: number;
}

export interface QuotaQueries {
  /** A project's limits (both null when none are set); null when the project does not exist. */
  get(project: string): Promise<QuotaLimits | null>;
  /** Replaces a project's limits; false when the project does not exist. */
  set(project: string, limits: QuotaLimits): Promise<boolean>;
  usage(project: string): Promise<ProjectUsage>;
  /**
   * Before a blob's bytes are written (no lock): throws QuotaExceededError when linking it into
   * `repository` would go over the project's byte quota now, so that a refused push stores
   * nothing. The linking transaction checks again under the lock (the authoritative check).
   */
  precheck(repository: string, blob: { digest: string; size: number }): Promise<void>;
}

export interface PullCount {
  pulls: number;
  lastPulledAt: Date;
}

/** One batched increment: `count` pulls of a manifest (through `tag`, when pulled by tag). */
export interface PullIncrement {
  repository: string;
  digest: string;
  tag: string | null;
  count: number;
  lastAt: number;
}

export interface PullStatsQueries {
  /** Adds a batch of counts in one transaction (repositories that no longer exist are skipped). */
  add(batch: PullIncrement[]): Promise<void>;
  /** Pull counts of manifests of a repository, by digest (absent: never pulled). */
  manifests(repository: string, digests: string[]): Promise<Map<string, PullCount>>;
  /** Pull counts through tags of a repository, by tag. */
  tags(repository: string, tags: string[]): Promise<Map<string, PullCount>>;
}

/** A manifest of a repository as retention sees it. */
export interface RetentionManifest {
  digest: string;
  mediaType: string;
  pushedAt: Date;
  tags: string[];
  subject: string | null;
  /** Referenced by an index of the repository. */
  inIndex: boolean;
  /** Pulls by any reference (as written so far: see PullRecorder). */
  pulls: number;
  lastPulledAt: Date | null;
}

export interface StoredRetentionPolicy {
  project: string;
  /** JSON rules as stored (validated by the control layer). */
  rules: unknown;
  schedule: string | null;
  updatedAt: Date;
  lastRunAt: Date | null;
}

export interface RetentionQueries {
  get(project: string): Promise<StoredRetentionPolicy | null>;
  /** Replaces a project's policy; false when the project does not exist. */
  set(project: string, rules: unknown, schedule: string | null): Promise<boolean>;
  /** Removes it; false when there was none. */
  delete(project: string): Promise<boolean>;
  /** Every policy (for the scheduler). */
  list(): Promise<StoredRetentionPolicy[]>;
  /**
   * Claims the scheduled run at `slot` for this node: true for exactly one caller across nodes,
   * when the last claimed run is older than `slot`.
   */
  claimRun(project: string, slot: Date): Promise<boolean>;
  /** Repositories of a project (`<project>` and `<project>/…`) with content, by name. */
  repositories(project: string): Promise<string[]>;
  /** Every manifest of a repository with its tags, index membership, subject and last pull. */
  manifests(repository: string): Promise<RetentionManifest[]>;
  /** Digests that tags of the repository named (before or after a move) since `since`. */
  historyDigests(repository: string, since: Date): Promise<Set<string>>;
}

/** A push that would take a project over its quota (403 DENIED on /v2). */
export class QuotaExceededError extends Error {
  constructor(
    readonly project: string,
    readonly kind: 'bytes' | 'repositories',
    readonly used: number,
    readonly limit: number,
    /** Bytes (or repositories) the refused push would add. */
    readonly adding: number,
  ) {
    super(
      kind === 'bytes'
        ? `quota exceeded: used ${used} of ${limit} bytes in project ${project}; this push needs ${adding} more — delete images or ask an owner to raise the quota`
        : `quota exceeded: used ${used} of ${limit} repositories in project ${project}; delete a repository or ask an owner to raise the limit`,
    );
    this.name = 'QuotaExceededError';
  }
}
