import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { boolean, duration } from './primitives.js';

/** The shortest grace period outside tests: a push in progress must finish well within it. */
export const MIN_GRACE_MS = 60_000;

/** Whether `expression` is a cron schedule cron-parser understands (5 or 6 fields). */
export function cronError(expression: string): string | null {
  try {
    CronExpressionParser.parse(expression);
    return null;
  } catch (error) {
    return `not a cron expression (${error instanceof Error ? error.message : String(error)}); e.g. "0 3 * * *" for 03:00 every day`;
  }
}

/**
 * Garbage collection: an optional schedule (cron syntax, run by one process per node; the
 * database lease lets one run at a time across nodes) and the grace period. `unsafeShortGrace`
 * exists for tests only: it allows a grace period under a minute (down to 1 s).
 */
export const gcSchema = z
  .object({
    schedule: z
      .string()
      .max(200)
      .optional()
      .transform((value) => (value === undefined || value.trim() === '' || value === 'off' ? null : value.trim()))
      .superRefine((value, ctx) => {
        const problem = value === null ? null : cronError(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    grace: duration.prefault('24h'),
    unsafeShortGrace: boolean.default(false),
  })
  .strict()
  .superRefine((gc, ctx) => {
    const floor = gc.unsafeShortGrace ? 1000 : MIN_GRACE_MS;
    if (gc.grace < floor) ctx.addIssue({ code: 'custom', path: ['grace'], message: gc.unsafeShortGrace ? 'at least 1s' : 'at least 1m' });
  })
  .prefault({});

export const gcSettings = [
  { key: 'gc.schedule', env: 'STOWAGE_GC_SCHEDULE', flag: '--gc-schedule <cron>', help: 'run garbage collection on this cron schedule, e.g. "0 3 * * *" (default off)' },
  { key: 'gc.grace', env: 'STOWAGE_GC_GRACE', flag: '--gc-grace <duration>', help: 'blobs pushed, mounted or linked more recently are kept (default 24h, at least 1m)' },
  { key: 'gc.unsafeShortGrace', env: 'STOWAGE_GC_UNSAFE_SHORT_GRACE', flag: '--gc-unsafe-short-grace <bool>', help: 'tests only: allow a grace period down to 1s (default false)' },
] as const;
