import type { Kysely, Migration } from 'kysely';
import type { ColumnTypes } from './migrations.js';

/**
 * 0007_events: who and which node moved each tag (tag_history columns), the transactional outbox
 * (`events`), webhooks and their deliveries (one row per webhook per event: the delivery log).
 */
export function eventsMigration(t: ColumnTypes): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      for (const column of ['actor', 'actor_kind', 'address', 'node']) {
        await db.schema.alterTable('tag_history').addColumn(column, 'text').execute();
      }

      await db.schema
        .createTable('events')
        // The sequence gives the order of fan-out; within a repository it is commit order,
        // because every event of a repository is written while its repository row is locked.
        .addColumn('seq', t.idType, t.id)
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('at', t.int64, (c) => c.notNull())
        .addColumn('actor', 'text')
        .addColumn('actor_kind', 'text')
        .addColumn('address', 'text')
        .addColumn('project', 'text')
        .addColumn('repository', 'text')
        .addColumn('tag', 'text')
        .addColumn('digest', 'text')
        .addColumn('previous_digest', 'text')
        .addColumn('media_type', 'text')
        .addColumn('size', t.int64)
        .addColumn('node', 'text')
        .addColumn('detail', 'text')
        .addColumn('fanned_out', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('events_fan_out_idx').on('events').columns(['fanned_out', 'seq']).execute();

      await db.schema
        .createTable('webhooks')
        .addColumn('id', t.idType, t.id)
        .addColumn('project_id', t.idType, (c) => c.references('projects.id').onDelete('cascade'))
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('events', 'text', (c) => c.notNull())
        .addColumn('repository', 'text')
        .addColumn('tag', 'text')
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('headers', 'text', (c) => c.notNull())
        .addColumn('secret', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', t.idType, t.id)
        .addColumn('webhook_id', t.idType, (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
        .addColumn('event_seq', t.idType, (c) => c.notNull().references('events.seq').onDelete('cascade'))
        /** The repository of the event ('' without one): deliveries of one key go in order. */
        .addColumn('ordering_key', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', t.int64)
        .addColumn('lease_until', t.int64)
        .addColumn('lease_owner', 'text')
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('latency_ms', 'integer')
        .addColumn('response', 'text')
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('delivered_at', t.int64)
        .execute();
      await db.schema.createIndex('webhook_deliveries_due_idx').on('webhook_deliveries').columns(['state', 'next_attempt_at']).execute();
      // The claim's ordering check: unfinished deliveries of one webhook and repository, by event.
      await db.schema.createIndex('webhook_deliveries_order_idx').on('webhook_deliveries').columns(['webhook_id', 'ordering_key', 'state', 'event_seq']).execute();
      await db.schema.createIndex('webhook_deliveries_event_idx').on('webhook_deliveries').column('event_seq').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('webhook_deliveries').execute();
      await db.schema.dropTable('webhooks').execute();
      await db.schema.dropTable('events').execute();
      for (const column of ['actor', 'actor_kind', 'address', 'node']) {
        await db.schema.alterTable('tag_history').dropColumn(column).execute();
      }
    },
  };
}
