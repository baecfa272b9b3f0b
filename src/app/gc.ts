import { CronExpressionParser } from 'cron-parser';
import type { Logger } from 'pino';
import { systemActor } from '../auth/principal.js';
import type { ResolvedConfig } from '../config/load.js';
import { MIN_GRACE_MS } from '../config/gc-schema.js';
import type { AuditLog } from '../control/audit.js';
import type { GarbageService } from '../control/garbage.js';
import { GarbageCollector } from '../control/gc/collector.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { UploadService } from '../registry/uploads.js';
import type { BlobStore } from '../storage/blob-store.js';

/**
 * Lets `garbage` collect in this process (server or CLI): the collector over the stores, the
 * grace settings, and the upload clean-up as its last phase (abandoned uploads past
 * `uploads.expiry`, with their staging data).
 */
export function enableGarbageCollection(parts: {
  config: ResolvedConfig;
  metadata: MetadataStore;
  blobStore: BlobStore;
  uploads: UploadService;
  garbage: GarbageService;
  audit: AuditLog;
  logger: Logger;
}): void {
  const { config, uploads } = parts;
  const collector = new GarbageCollector(parts.metadata, parts.blobStore, {
    expireUploads: () => uploads.expire(new Date(Date.now() - config.uploads.expiry)),
  });
  parts.garbage.attach(collector, parts.audit, parts.logger, { graceMs: config.gc.grace, minGraceMs: config.gc.unsafeShortGrace ? 1000 : MIN_GRACE_MS });
}

/**
 * Runs garbage collection on the `gc.schedule` cron schedule (in the one process of a node that
 * runs background jobs). Every node may have the schedule: the database lease lets one run start
 * and the others skip. Resolves to a function that stops it.
 */
export function scheduleGarbageCollection(schedule: string | null, garbage: GarbageService, logger: Logger): () => void {
  if (schedule === null) return () => undefined;
  const cron = CronExpressionParser.parse(schedule);
  const actor = systemActor('scheduler');
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = () => {
    if (stopped) return;
    const next = cron.next().getTime();
    // setTimeout takes at most 2^31-1 ms; a later run is re-armed on the way.
    const wait = Math.min(Math.max(next - Date.now(), 0), 2 ** 31 - 1);
    timer = setTimeout(() => {
      if (Date.now() + 1000 < next) {
        cron.prev();
        arm();
        return;
      }
      garbage.startScheduled(actor).then(
        (run) => logger.info({ run: run?.id ?? null }, run ? 'scheduled garbage collection started' : 'scheduled garbage collection skipped: another run holds the lease'),
        (error: unknown) => logger.error({ err: error }, 'scheduled garbage collection could not start'),
      );
      arm();
    }, wait);
    timer.unref();
  };
  arm();
  logger.info({ schedule }, 'garbage collection scheduled');
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
