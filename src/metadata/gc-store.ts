import type { BlobRecord, PageRequest } from './metadata-store.js';

/** A blob no manifest references, not pushed, mounted or linked since the grace cutoff. */
export interface GcCandidate {
  digest: string;
  size: number;
  /** When it was last pushed, mounted or linked. */
  seenAt: Date;
  /** Repositories it is still linked into (pushed or mounted, but used by no manifest). */
  repositories: number;
}

export type GcPhase = 'starting' | 'marking' | 'sweeping' | 'uploads' | 'done';
export type GcStatus = 'running' | 'succeeded' | 'failed';

export interface GcProgress {
  phase: GcPhase;
  /** Candidates looked at, and their bytes. */
  blobsExamined: number;
  bytesExamined: number;
  /** Candidates unlinked and marked for deletion (some may have been rescued by a push since). */
  blobsMarked: number;
  /** Blobs whose bytes and row are gone, and their bytes. */
  blobsFreed: number;
  bytesFreed: number;
  /** Staging data of abandoned uploads removed. */
  uploadsRemoved: number;
}

export interface GcRun extends GcProgress {
  id: string;
  status: GcStatus;
  graceMs: number;
  /** Candidates limited to blobs linked into this project's repositories; null: all. */
  project: string | null;
  /** Who started it (`scheduler` for the schedule). */
  actor: string;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
  error: string | null;
}

export interface GcRunInput {
  graceMs: number;
  project: string | null;
  actor: string;
}

/**
 * Garbage collection's metadata steps (see src/control/gc/collector.ts for the protocol and why
 * a concurrent push can never lose a blob).
 */
export interface GcQueries {
  /**
   * Unreferenced, unmarked, unpinned blobs last seen before `before`, in digest order after
   * `page.last`; with `project`, only those linked into one of its repositories.
   */
  candidates(before: Date, page: PageRequest, project?: string): Promise<GcCandidate[]>;
  /**
   * Mark step, one transaction: locks every repository the blob is linked into (the lock a
   * manifest PUT takes) and the blob's row, checks again that it is a candidate, then removes its
   * links and sets its `deleting` mark. False when it is no candidate any more.
   */
  mark(digest: string, before: Date): Promise<boolean>;
  /** Marked blobs (absent to the registry; their bytes may or may not still exist). */
  marked(page: PageRequest): Promise<BlobRecord[]>;
  /**
   * Sweep step, one transaction: locks the rows of `digests` that are still marked, calls
   * `deleteBytes` with them while they stay locked, then removes the rows. When `deleteBytes`
   * throws, nothing changes in the metadata. Resolves to the blobs removed.
   */
  sweep(digests: string[], deleteBytes: (digests: string[]) => Promise<void>): Promise<BlobRecord[]>;

  /**
   * Starts a run if no other holds the lease (any process, any node): a run whose lease expired
   * is recorded as failed. Resolves to the new run, or to the running one that holds the lease.
   */
  begin(input: GcRunInput, leaseMs: number): Promise<{ run: GcRun; started: boolean }>;
  /** Extends the lease of a run; false when it was lost. */
  renew(runId: string, leaseMs: number): Promise<boolean>;
  /** Records a run's progress. */
  progress(runId: string, progress: GcProgress): Promise<void>;
  /** Ends a run (and releases its lease); runs finished more than 90 days ago go. */
  finish(runId: string, status: Exclude<GcStatus, 'running'>, progress: GcProgress, error: string | null): Promise<GcRun | null>;
  run(runId: string): Promise<GcRun | null>;
  /** Totals over every finished run (all nodes), for metrics. */
  totals(): Promise<GcTotals>;
  /** Runs, newest first; `before` is the id of the last run of the previous page. */
  runs(limit: number, before?: string): Promise<GcRun[]>;
}

export interface GcTotals {
  runs: Record<Exclude<GcStatus, 'running'>, number>;
  blobsFreed: number;
  bytesFreed: number;
  /** Seconds spent in finished runs. */
  seconds: number;
  /** Duration of the last finished run, in seconds (0 when none). */
  lastSeconds: number;
}
