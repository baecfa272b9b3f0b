import { sql, type Kysely, type Migration } from 'kysely';
import type { ColumnTypes } from './migrations.js';

/**
 * 0005_gc: online garbage collection.
 * - `blobs.seen_at`: when the blob was last pushed, mounted or linked (the grace period counts
 *   from it; backfilled from created_at). `blobs.deleting_since`: the tombstone GC sets when it
 *   unlinks an unreferenced blob; the row goes once its bytes are deleted.
 * - `uploads.pin_digest`: set when a completion is about to store a blob's bytes; while set, GC never
 *   marks that blob (the pin between "bytes stored" and "blob linked").
 * - `gc_runs`: each run with its phase and progress; `gc_lease`: one run at a time, any node.
 */
export function gcMigration(t: ColumnTypes): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('blobs').addColumn('seen_at', t.int64).execute();
      await db.schema.alterTable('blobs').addColumn('deleting_since', t.int64).execute();
      await sql`update blobs set seen_at = created_at`.execute(db);
      await db.schema.createIndex('blobs_deleting_idx').on('blobs').column('deleting_since').where(sql.ref('deleting_since'), 'is not', null).execute();
      await db.schema.alterTable('uploads').addColumn('pin_digest', 'text').execute();
      await db.schema.createIndex('uploads_pin_idx').on('uploads').column('pin_digest').where(sql.ref('pin_digest'), 'is not', null).execute();
      await db.schema
        .createTable('gc_runs')
        .addColumn('id', t.idType, t.id)
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('phase', 'text', (c) => c.notNull())
        .addColumn('grace_ms', t.int64, (c) => c.notNull())
        .addColumn('project', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('started_at', t.int64, (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addColumn('finished_at', t.int64)
        .addColumn('blobs_examined', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_examined', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('blobs_marked', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('blobs_freed', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_freed', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('uploads_removed', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .execute();
      await db.schema
        .createTable('gc_lease')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('run_id', t.idType, (c) => c.notNull())
        .addColumn('expires_at', t.int64, (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('gc_lease').execute();
      await db.schema.dropTable('gc_runs').execute();
      await db.schema.dropIndex('uploads_pin_idx').execute();
      await db.schema.alterTable('uploads').dropColumn('pin_digest').execute();
      await db.schema.dropIndex('blobs_deleting_idx').execute();
      await db.schema.alterTable('blobs').dropColumn('deleting_since').execute();
      await db.schema.alterTable('blobs').dropColumn('seen_at').execute();
    },
  };
}
