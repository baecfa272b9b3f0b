import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

/** A five- or six-field cron expression (minute hour day-of-month month day-of-week; optional seconds first), in UTC. */
export const cronExpression = z
  .string()
  .max(200)
  .refine((text) => {
    if (text.trim().split(/\s+/).length < 5) return false;
    try {
      CronExpressionParser.parse(text, { tz: 'UTC' });
      return true;
    } catch {
      return false;
    }
  }, 'not a cron expression: five fields (minute hour day-of-month month day-of-week, UTC), e.g. "0 3 * * *"');

/** Retention: the schedule of projects' policies that have none of their own (off by default). */
export const retentionSchema = z
  .object({
    schedule: z
      .string()
      .optional()
      .transform((value) => (value === undefined || value.trim() === '' || value === 'off' ? null : value.trim()))
      .pipe(cronExpression.nullable()),
  })
  .strict()
  .prefault({});

export const retentionSettings = [
  { key: 'retention.schedule', env: 'STOWAGE_RETENTION_SCHEDULE', flag: '--retention-schedule <cron>', help: 'when projects\' retention policies without their own schedule run (UTC cron, e.g. "0 3 * * *"; default off)' },
] as const;
