import type { Kysely, Migration } from 'kysely';
import type { ColumnTypes } from './migrations.js';

/**
 * 0006_quotas_retention: project quotas, pull statistics (per manifest and per tag) and
 * retention policies. Usage is computed from repository_blobs; a project with a quota keeps an
 * upper bound of it on its quota row, so that most links need no full count (see quotas.ts).
 */
export function housekeepingMigration(t: ColumnTypes): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('project_quotas')
        .addColumn('project_id', t.idType, (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
        .addColumn('bytes_limit', t.int64)
        .addColumn('repositories_limit', t.int64)
        // An upper bound of the project's usage (see quotas.ts), kept under this row's lock.
        .addColumn('used_bound', t.int64, (c) => c.notNull().defaultTo(0))
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('manifest_pulls')
        .addColumn('repository_id', t.idType, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('pulls', t.int64, (c) => c.notNull())
        .addColumn('last_pulled_at', t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('manifest_pulls_pk', ['repository_id', 'digest'])
        .execute();
      await db.schema
        .createTable('tag_pulls')
        .addColumn('repository_id', t.idType, (c) => c.notNull().references('repositories.id').onDelete('cascade'))
        .addColumn('tag', t.name, (c) => c.notNull())
        .addColumn('pulls', t.int64, (c) => c.notNull())
        .addColumn('last_pulled_at', t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('tag_pulls_pk', ['repository_id', 'tag'])
        .execute();
      await db.schema
        .createTable('retention_policies')
        .addColumn('project_id', t.idType, (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
        .addColumn('rules', 'text', (c) => c.notNull())
        .addColumn('schedule', 'text')
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addColumn('last_run_at', t.int64)
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['retention_policies', 'tag_pulls', 'manifest_pulls', 'project_quotas']) await db.schema.dropTable(table).execute();
    },
  };
}
