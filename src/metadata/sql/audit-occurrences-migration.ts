import type { Kysely, Migration } from 'kysely';

/**
 * 0013_audit_occurrences: an audit row may stand for several identical events. The audit log
 * writes identical entries (same actor, address, action, target, result and detail) that arrive
 * within one batch (≤ 0.5 s) as one row with their number, so a client that pulls the same tag a
 * thousand times a second adds two rows a second instead of a thousand; each pull is still
 * counted. Existing rows stand for one event each.
 */
export function auditOccurrencesMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('audit_log').addColumn('occurrences', 'integer', (column) => column.notNull().defaultTo(1)).execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('audit_log').dropColumn('occurrences').execute();
    },
  };
}
