import type { Logger } from 'pino';
import { z } from 'zod';
import type { Actor } from '../auth/principal.js';
import { actorName } from '../auth/principal.js';
import type { AuthService } from '../auth/service.js';
import { MIN_GRACE_MS } from '../config/gc-schema.js';
import { duration } from '../config/primitives.js';
import type { GcCandidate, GcProgress, GcRun } from '../metadata/gc-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { AuditLog } from './audit.js';
import { ControlError, notFound } from './errors.js';
import { GcBusyError, type GarbageCollector } from './gc/collector.js';
import { requireAccess, systemAccess } from './guard.js';

/** Blobs pushed, mounted or linked more recently than this are never garbage (a push may be on its way). */
export const defaultGraceMs = 24 * 3600 * 1000;
/** The most blobs one preview lists (the totals still count them all). */
const MAX_LISTED = 10_000;

const project = z.string().min(1).max(255).regex(/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/, 'a project name (the first component of repository names)');

export const garbagePreviewInput = z.object({ grace: duration.optional(), project: project.optional() }).strict();
export const garbageRunInput = z.object({ grace: duration.optional(), project: project.optional() }).strict();
export const garbageRunsInput = z
  .object({ limit: z.coerce.number().int().min(1).max(1000).default(50), before: z.string().regex(/^\d{1,18}$/, 'a run id').optional() })
  .strict();

export interface GarbagePreview {
  graceMs: number;
  project: string | null;
  /** Blobs last pushed, mounted or linked before this are candidates. */
  before: Date;
  count: number;
  bytes: number;
  blobs: GcCandidate[];
  /** More candidates exist than `blobs` lists. */
  truncated: boolean;
}

export interface GarbageOptions {
  /** The grace period when a request names none (`gc.grace`). */
  graceMs?: number;
  /** The shortest grace period accepted (1m; 1s with `gc.unsafeShortGrace`, for tests). */
  minGraceMs?: number;
  now?: () => number;
}

/** What a finished run reports to metrics and logs. */
export type RunListener = (run: GcRun) => void;

/**
 * Garbage collection for system administrators: a dry run (`preview`), runs started on demand
 * (`start` in the background, `runNow` in the foreground) and their records. The collection
 * itself is the GarbageCollector's (attached by the process that may delete: the server, the CLI).
 */
export class GarbageService {
  private collector: GarbageCollector | undefined;
  private audit: AuditLog | undefined;
  private logger: Logger | undefined;
  private readonly listeners: RunListener[] = [];
  private readonly running = new Set<Promise<unknown>>();
  private graceMs: number;
  private minGraceMs: number;
  private readonly now: () => number;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    options: GarbageOptions = {},
  ) {
    this.graceMs = options.graceMs ?? defaultGraceMs;
    this.minGraceMs = options.minGraceMs ?? MIN_GRACE_MS;
    this.now = options.now ?? Date.now;
  }

  /** Enables runs (deletion); without it only the preview and the records work. */
  attach(collector: GarbageCollector, audit: AuditLog, logger: Logger, grace: { graceMs: number; minGraceMs: number }): void {
    this.collector = collector;
    this.audit = audit;
    this.logger = logger;
    this.graceMs = grace.graceMs;
    this.minGraceMs = grace.minGraceMs;
  }

  onFinished(listener: RunListener): void {
    this.listeners.push(listener);
  }

  async preview(actor: Actor, options: { grace?: number; project?: string }, onProgress?: (count: number, bytes: number) => void): Promise<GarbagePreview> {
    await this.requireAdmin(actor);
    const graceMs = this.grace(options.grace);
    const before = new Date(this.now() - graceMs);
    const blobs: GcCandidate[] = [];
    let count = 0;
    let bytes = 0;
    let last: string | undefined;
    for (;;) {
      const page = await this.metadata.gc.candidates(before, { limit: 1000, ...(last !== undefined ? { last } : {}) }, options.project);
      for (const blob of page) {
        count += 1;
        bytes += blob.size;
        if (blobs.length < MAX_LISTED) blobs.push(blob);
      }
      onProgress?.(count, bytes);
      if (page.length < 1000) break;
      last = page[page.length - 1]!.digest;
    }
    return { graceMs, project: options.project ?? null, before, count, bytes, blobs, truncated: count > blobs.length };
  }

  /** Starts a run in the background; resolves to it as it starts. 409 while another runs. */
  async start(actor: Actor, input: unknown): Promise<GcRun> {
    await this.requireAdmin(actor);
    const parsed = garbageRunInput.safeParse(input ?? {});
    if (!parsed.success) throw ControlError.fromZod(parsed.error, 'body');
    const run = await this.begin(actor, parsed.data);
    const work = this.execute(actor, run).finally(() => this.running.delete(work));
    this.running.add(work);
    return run;
  }

  /** Runs to the end (the CLI on the local installation). */
  async runNow(actor: Actor, options: { grace?: number; project?: string }, onProgress?: (progress: GcProgress) => void): Promise<GcRun> {
    await this.requireAdmin(actor);
    const run = await this.begin(actor, options);
    return this.execute(actor, run, onProgress);
  }

  /** The schedule's run: skipped (null) while another run holds the lease. */
  async startScheduled(actor: Actor): Promise<GcRun | null> {
    try {
      return await this.start(actor, {});
    } catch (error) {
      if (error instanceof ControlError && error.code === 'conflict') return null;
      throw error;
    }
  }

  async runs(actor: Actor, options: { limit?: number; before?: string }): Promise<{ items: GcRun[] }> {
    await this.requireAdmin(actor);
    return { items: await this.metadata.gc.runs(options.limit ?? 50, options.before) };
  }

  async run(actor: Actor, id: string): Promise<GcRun> {
    await this.requireAdmin(actor);
    const run = await this.metadata.gc.run(id);
    if (!run) throw notFound(`garbage collection run ${id}`);
    return run;
  }

  /** Waits for the runs this process started (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /** Shutdown: ends the runs of this process at their next step (recorded as failed) and waits. */
  async stop(): Promise<void> {
    this.collector?.stop();
    await this.idle();
  }

  private async begin(actor: Actor, options: { grace?: number; project?: string }): Promise<GcRun> {
    if (!this.collector) throw new ControlError('conflict', 'garbage collection cannot run in this process (no blob store attached)');
    const graceMs = this.grace(options.grace);
    try {
      const run = await this.collector.begin({ graceMs, project: options.project ?? null, actor: actorName(actor.principal) ?? 'unknown' });
      this.audit?.record(actor, { action: 'gc.start', result: 'success', target: `gc run ${run.id}`, project: options.project ?? null, detail: { run: run.id, graceMs, project: options.project ?? null } });
      return run;
    } catch (error) {
      if (error instanceof GcBusyError) {
        throw new ControlError('conflict', `${error.message}; wait for it to finish (GET /api/v1/gc/runs/${error.run.id}) and start again`);
      }
      throw error;
    }
  }

  private async execute(actor: Actor, run: GcRun, onProgress?: (progress: GcProgress) => void): Promise<GcRun> {
    const finished = await this.collector!.execute(run, onProgress ? { onProgress } : {});
    this.audit?.record(actor, {
      action: 'gc.run',
      result: finished.status === 'succeeded' ? 'success' : 'failure',
      target: `gc run ${run.id}`,
      project: run.project,
      detail: { run: run.id, blobsFreed: finished.blobsFreed, bytesFreed: finished.bytesFreed, blobsMarked: finished.blobsMarked, uploadsRemoved: finished.uploadsRemoved, error: finished.error },
    });
    const log = { run: run.id, status: finished.status, blobsFreed: finished.blobsFreed, bytesFreed: finished.bytesFreed, error: finished.error ?? undefined };
    if (finished.status === 'succeeded') this.logger?.info(log, 'garbage collection finished');
    else this.logger?.error(log, 'garbage collection failed');
    for (const listener of this.listeners) listener(finished);
    return finished;
  }

  private grace(requested: number | undefined): number {
    const graceMs = requested ?? this.graceMs;
    if (graceMs < this.minGraceMs) {
      const floor = this.minGraceMs >= 60_000 ? `${this.minGraceMs / 60_000}m` : `${this.minGraceMs / 1000}s`;
      throw new ControlError('invalid', `invalid input: grace: at least ${floor}`, [{ field: 'grace', message: `at least ${floor}` }]);
    }
    return graceMs;
  }

  private async requireAdmin(actor: Actor): Promise<void> {
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators run garbage collection');
  }
}
