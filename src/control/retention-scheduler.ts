import type { Logger } from 'pino';
import { systemActor } from '../auth/principal.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { previousSlot } from './retention-policy.js';
import type { RetentionService } from './retention.js';

/**
 * Scheduled retention runs, in the background-jobs process of each node. Every tick (a minute)
 * looks for policies whose schedule named a time after their last run; the database hands each
 * such slot to exactly one node (claimRun), which runs the policy. A slot missed while no node
 * ran is caught up once, at the next tick; older missed slots are not replayed.
 */
export class RetentionScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly service: RetentionService,
    private readonly logger: Pick<Logger, 'info' | 'error'>,
    private readonly now: () => number = Date.now,
  ) {}

  start(intervalMs = 60_000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Runs every policy that is due; resolves to the projects it ran. */
  tick(): Promise<string[]> {
    const ran: string[] = [];
    const work = this.running.then(async () => {
      const now = this.now();
      for (const stored of await this.metadata.retention.list()) {
        const schedule = this.service.scheduleOf(stored);
        if (!schedule) continue;
        const slot = previousSlot(schedule, now);
        if (stored.lastRunAt && stored.lastRunAt.getTime() >= slot.getTime()) continue;
        if (!(await this.metadata.retention.claimRun(stored.project, slot))) continue;
        try {
          let logged = Date.now();
          const report = await this.service.runScheduled(systemActor('retention'), stored, (progress) => {
            // Long runs say where they are every 10 s.
            if (Date.now() - logged < 10_000) return;
            logged = Date.now();
            this.logger.info({ project: stored.project, ...progress }, 'scheduled retention run in progress');
          });
          ran.push(stored.project);
          this.logger.info({ project: stored.project, slot, removed: report.removed.length, kept: report.kept.length, skipped: report.skipped.length }, 'scheduled retention run finished');
        } catch (error) {
          this.logger.error({ err: error, project: stored.project }, 'scheduled retention run failed');
        }
      }
    });
    this.running = work.catch((error: unknown) => this.logger.error({ err: error }, 'looking for due retention runs failed'));
    return work.then(() => ran);
  }
}
