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

/** 0004_tag_rules: immutable tag rules of projects (repository and tag patterns). */
export function tagRulesMigration(t: ColumnTypes): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('tag_rules')
        .addColumn('id', t.idType, t.id)
        .addColumn('project_id', t.idType, (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('repository', 'text', (c) => c.notNull())
        .addColumn('tag', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('tag_rules_project_idx').on('tag_rules').column('project_id').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('tag_rules').execute();
    },
  };
}
