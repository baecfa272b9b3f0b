import type { GcProgress, GcRun, GcRunInput } from '../../metadata/gc-store.js';
import type { MetadataStore } from '../../metadata/metadata-store.js';
import type { BlobStore } from '../../storage/blob-store.js';

/**
 * Online garbage collection, while the registry serves pushes and pulls on any number of nodes.
 *
 * 1. Mark: candidates come from the metadata alone (blobs no manifest references, unpinned, not
 *    pushed, mounted or linked since the grace cutoff). Each is re-checked and unlinked in one
 *    transaction that locks every repository it is linked into (the lock a manifest PUT takes
 *    before checking its blobs' links) and its row (which completions and mounts write): a PUT
 *    either committed before (the blob is referenced: skipped) or fails afterwards with
 *    MANIFEST_BLOB_UNKNOWN. The row stays with a `deleting` mark: absent to HEAD, GET and
 *    mounts (no link; `blobs.get` and `mount` require an unmarked row).
 * 2. Sweep: for batches of marked rows, one transaction locks them, deletes their bytes and then
 *    the rows. A completion that pushes a marked blob again (`reserve`, before it stores bytes)
 *    either clears the mark first (the sweep skips the row and the bytes stay) or waits for the
 *    sweep and records the blob anew, then stores the bytes itself (they are gone).
 * 3. Uploads: staging data of abandoned uploads (the upload expiry's own clean-up).
 *
 * A crash anywhere leaves marked rows (invisible) whose bytes may be gone: the next run sweeps
 * them. Two runs at once would still be safe; the lease keeps it to one for clarity and cost.
 */
export interface CollectorOptions {
  /** How long a run's lease lasts without renewal (a dead run blocks the next this long). */
  leaseMs?: number;
  /** Candidates and marked rows per page. */
  pageSize?: number;
  /** Rows per sweep transaction, and sweep transactions in flight. */
  sweepBatch?: number;
  sweepConcurrency?: number;
  /** Removes abandoned uploads' data; resolves to how many. */
  expireUploads?: () => Promise<number>;
  now?: () => number;
}

export interface RunHooks {
  /** Called after each page with the run's progress so far. */
  onProgress?(progress: GcProgress): void;
}

export class GcBusyError extends Error {
  constructor(readonly run: GcRun) {
    super(`garbage collection run ${run.id} is already running (started ${run.startedAt.toISOString()} by ${run.actor})`);
    this.name = 'GcBusyError';
  }
}

export class GarbageCollector {
  private readonly leaseMs: number;
  private readonly pageSize: number;
  private readonly sweepBatch: number;
  private readonly sweepConcurrency: number;
  private readonly now: () => number;
  private stopping = false;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly options: CollectorOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 15_000;
    this.pageSize = options.pageSize ?? 500;
    this.sweepBatch = options.sweepBatch ?? 250;
    this.sweepConcurrency = options.sweepConcurrency ?? 4;
    this.now = options.now ?? Date.now;
  }

  /**
   * Makes runs in progress end at their next step, recorded as failed ("stopped") with the lease
   * released, and refuses new ones (the process is shutting down). What they marked is swept by
   * the next run.
   */
  stop(): void {
    this.stopping = true;
  }

  /** Takes the lease and records a run; throws GcBusyError when another run holds it. */
  async begin(input: GcRunInput): Promise<GcRun> {
    if (this.stopping) throw new Error('garbage collection cannot start: this process is shutting down');
    const { run, started } = await this.metadata.gc.begin(input, this.leaseMs);
    if (!started) throw new GcBusyError(run);
    return run;
  }

  /** Executes a begun run to its end; resolves to the finished run (never throws for its work). */
  async execute(run: GcRun, hooks: RunHooks = {}): Promise<GcRun> {
    const progress: GcProgress = { phase: 'marking', blobsExamined: 0, bytesExamined: 0, blobsMarked: 0, blobsFreed: 0, bytesFreed: 0, uploadsRemoved: 0 };
    let lost = false;
    const renewal = setInterval(() => {
      this.metadata.gc.renew(run.id, this.leaseMs).then(
        (held) => {
          if (!held) lost = true;
        },
        () => undefined, // a database hiccup: the next renewal tries again
      );
    }, this.leaseMs / 3);
    const report = async () => {
      if (lost) throw new Error('lost the garbage collection lease (the database was unreachable for longer than the lease); the next run finishes the work');
      await this.metadata.gc.progress(run.id, progress);
      hooks.onProgress?.({ ...progress });
    };
    try {
      const before = new Date(run.startedAt.getTime() - run.graceMs);
      await report();
      await this.mark(before, run.project ?? undefined, progress, report);
      progress.phase = 'sweeping';
      await report();
      await this.sweep(progress, report);
      if (this.options.expireUploads) {
        progress.phase = 'uploads';
        await report();
        progress.uploadsRemoved += await this.options.expireUploads();
      }
      progress.phase = 'done';
      hooks.onProgress?.({ ...progress });
      return (await this.metadata.gc.finish(run.id, 'succeeded', progress, null))!;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const finished = await this.metadata.gc.finish(run.id, 'failed', progress, message.slice(0, 2000)).catch(() => null);
      return finished ?? { ...run, ...progress, status: 'failed', error: message, finishedAt: new Date(this.now()) };
    } finally {
      clearInterval(renewal);
    }
  }

  private async mark(before: Date, project: string | undefined, progress: GcProgress, report: () => Promise<void>): Promise<void> {
    let last: string | undefined;
    for (;;) {
      const page = await this.metadata.gc.candidates(before, { limit: this.pageSize, ...(last !== undefined ? { last } : {}) }, project);
      for (const candidate of page) {
        progress.blobsExamined += 1;
        progress.bytesExamined += candidate.size;
        if (this.stopping) throw stopped();
        if (await this.metadata.gc.mark(candidate.digest, before)) progress.blobsMarked += 1;
        await yieldToRequests();
      }
      await report();
      if (page.length < this.pageSize) return;
      last = page[page.length - 1]!.digest;
    }
  }

  /** Every marked row, this run's and those an interrupted run left. */
  private async sweep(progress: GcProgress, report: () => Promise<void>): Promise<void> {
    let last: string | undefined;
    const deleteBytes = (digests: string[]) => (this.blobs.deleteMany ? this.blobs.deleteMany(digests) : runLimited(digests, 16, (d) => this.blobs.delete(d)));
    for (;;) {
      const page = await this.metadata.gc.marked({ limit: this.sweepBatch * this.sweepConcurrency, ...(last !== undefined ? { last } : {}) });
      const batches: string[][] = [];
      for (let i = 0; i < page.length; i += this.sweepBatch) batches.push(page.slice(i, i + this.sweepBatch).map((b) => b.digest));
      await runLimited(batches, this.sweepConcurrency, async (batch) => {
        if (this.stopping) throw stopped();
        for (const blob of await this.metadata.gc.sweep(batch, deleteBytes)) {
          progress.blobsFreed += 1;
          progress.bytesFreed += blob.size;
        }
        await yieldToRequests();
      });
      await report();
      if (page.length < this.sweepBatch * this.sweepConcurrency) return;
      last = page[page.length - 1]!.digest;
    }
  }
}

function stopped(): Error {
  return new Error('stopped: the process shut down during the run (the next run finishes the work)');
}

/**
 * Lets requests of this process in. With SQLite a process has one connection, whose lock is not
 * fair: a loop of transactions that takes it again at once would starve every request waiting
 * for it (measured: a 20,000-blob mark phase held off a status query for 11 s).
 */
function yieldToRequests(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs `work` over `items` with at most `limit` at once; rejects with the first failure. */
export async function runLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
}
