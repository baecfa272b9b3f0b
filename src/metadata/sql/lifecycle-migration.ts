import type { Kysely, Migration } from 'kysely';
import type { ColumnTypes } from './migrations.js';

/**
 * 0003_lifecycle: per-project settings of versions and lifecycle (the tag history window). One
 * row a project, removed with it; no row means the defaults.
 */
export function lifecycleMigration(t: ColumnTypes): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('project_lifecycle')
        .addColumn('project_id', t.idType, (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
        .addColumn('history_window_ms', t.int64)
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('project_lifecycle').execute();
    },
  };
}
