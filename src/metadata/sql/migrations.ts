import {
  Migrator,
  sql,
  type ColumnDefinitionBuilder,
  type ColumnDataType,
  type Expression,
  type Kysely,
  type Migration,
  type MigrationProvider,
} from 'kysely';
import { identityMigration } from './identity-migration.js';
import { lifecycleMigration, tagRulesMigration } from './lifecycle-migration.js';
import { tagListVersionMigration } from './tag-list-migration.js';
import { contentVersionMigration } from './content-version-migration.js';
import { listLeaseMigration } from './list-lease-migration.js';
import { leanUploadsMigration } from './lean-uploads-migration.js';
import { auditOccurrencesMigration } from './audit-occurrences-migration.js';
import { gcMigration } from './gc-migration.js';
import { uploadBlobMigration } from './upload-blob-migration.js';
import { housekeepingMigration } from './housekeeping-migration.js';
import { eventsMigration } from './events-migration.js';
import type { SqlDialect } from './schema.js';

/** Kysely's default bookkeeping table; kept so that the standard tooling can read it. */
export const MIGRATION_TABLE = 'kysely_migration';

/** The database was migrated by a newer Stowage: it has migrations this code does not know. */
export class MetadataSchemaTooNewError extends Error {
  constructor(readonly unknownMigrations: string[]) {
    super(
      `the metadata database schema is newer than this version of Stowage: it has migrations ` +
        `this version does not know (${unknownMigrations.join(', ')}); run a newer Stowage ` +
        `or restore a backup made before the upgrade`,
    );
    this.name = 'MetadataSchemaTooNewError';
  }
}

/** What `addColumn` accepts as a type (Kysely does not export this alias). */
type DataTypeExpression = ColumnDataType | Expression<any>;

/** The column types of columnTypes(), for migrations kept in other files. */
export type ColumnTypes = ReturnType<typeof columnTypes>;

/** Column types where SQLite and PostgreSQL differ. */
function columnTypes(dialect: SqlDialect) {
  const pg = dialect === 'postgres';
  return {
    int64: (pg ? 'bigint' : 'integer') as DataTypeExpression,
    binary: (pg ? 'bytea' : 'blob') as DataTypeExpression,
    /** Names listed in byte-wise order (SQLite's default BINARY collation does that already). */
    name: (pg ? sql`text collate "C"` : 'text') as DataTypeExpression,
    /** Auto-generated primary key; in SQLite `integer primary key` is a 64-bit rowid alias. */
    id: pg
      ? (c: ColumnDefinitionBuilder) => c.primaryKey().generatedByDefaultAsIdentity()
      : (c: ColumnDefinitionBuilder) => c.primaryKey().autoIncrement(),
    idType: (pg ? 'bigint' : 'integer') as DataTypeExpression,
  };
}

/**
 * The migrations, in name order. A migration that has shipped is never edited: change the schema
 * with a new entry. Timestamps are integer milliseconds since the epoch.
 */
export function metadataMigrations(dialect: SqlDialect): Record<string, Migration> {
  const t = columnTypes(dialect);
  return {
    '0001_initial': {
      async up(db: Kysely<any>): Promise<void> {
        await db.schema
          .createTable('repositories')
          .addColumn('id', t.idType, t.id)
          .addColumn('name', t.name, (c) => c.notNull().unique())
          .addColumn('created_at', t.int64, (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('blobs')
          .addColumn('digest', 'text', (c) => c.primaryKey())
          .addColumn('size', t.int64, (c) => c.notNull())
          .addColumn('created_at', t.int64, (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('repository_blobs')
          .addColumn('repository_id', t.idType, (c) =>
            c.notNull().references('repositories.id').onDelete('cascade'),
          )
          // No cascade: a blob row cannot be removed while a repository still links it.
          .addColumn('digest', 'text', (c) => c.notNull().references('blobs.digest'))
          .addColumn('created_at', t.int64, (c) => c.notNull())
          .addPrimaryKeyConstraint('repository_blobs_pk', ['repository_id', 'digest'])
          .execute();
        await db.schema
          .createIndex('repository_blobs_digest_idx')
          .on('repository_blobs')
          .column('digest')
          .execute();

        await db.schema
          .createTable('manifests')
          .addColumn('id', t.idType, t.id)
          .addColumn('repository_id', t.idType, (c) =>
            c.notNull().references('repositories.id').onDelete('cascade'),
          )
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('media_type', 'text', (c) => c.notNull())
          .addColumn('artifact_type', 'text')
          .addColumn('subject_digest', 'text')
          .addColumn('annotations', 'text')
          .addColumn('size', t.int64, (c) => c.notNull())
          .addColumn('content', t.binary, (c) => c.notNull())
          .addColumn('created_at', t.int64, (c) => c.notNull())
          .addUniqueConstraint('manifests_repository_digest_unique', ['repository_id', 'digest'])
          .execute();
        await db.schema
          .createIndex('manifests_subject_idx')
          .on('manifests')
          .columns(['repository_id', 'subject_digest'])
          .execute();

        await db.schema
          .createTable('manifest_blobs')
          .addColumn('manifest_id', t.idType, (c) =>
            c.notNull().references('manifests.id').onDelete('cascade'),
          )
          .addColumn('digest', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('manifest_blobs_pk', ['manifest_id', 'digest'])
          .execute();
        await db.schema
          .createIndex('manifest_blobs_digest_idx')
          .on('manifest_blobs')
          .column('digest')
          .execute();

        await db.schema
          .createTable('manifest_children')
          .addColumn('manifest_id', t.idType, (c) =>
            c.notNull().references('manifests.id').onDelete('cascade'),
          )
          .addColumn('child_digest', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('manifest_children_pk', ['manifest_id', 'child_digest'])
          .execute();
        await db.schema
          .createIndex('manifest_children_child_idx')
          .on('manifest_children')
          .column('child_digest')
          .execute();

        await db.schema
          .createTable('tags')
          .addColumn('repository_id', t.idType, (c) =>
            c.notNull().references('repositories.id').onDelete('cascade'),
          )
          .addColumn('name', t.name, (c) => c.notNull())
          .addColumn('manifest_id', t.idType, (c) =>
            c.notNull().references('manifests.id').onDelete('cascade'),
          )
          .addColumn('updated_at', t.int64, (c) => c.notNull())
          .addPrimaryKeyConstraint('tags_pk', ['repository_id', 'name'])
          .execute();
        await db.schema.createIndex('tags_manifest_idx').on('tags').column('manifest_id').execute();

        await db.schema
          .createTable('tag_history')
          .addColumn('id', t.idType, t.id)
          .addColumn('repository_id', t.idType, (c) =>
            c.notNull().references('repositories.id').onDelete('cascade'),
          )
          .addColumn('tag', 'text', (c) => c.notNull())
          .addColumn('previous_digest', 'text')
          .addColumn('digest', 'text')
          .addColumn('at', t.int64, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('tag_history_tag_idx')
          .on('tag_history')
          .columns(['repository_id', 'tag', 'at'])
          .execute();

        await db.schema
          .createTable('uploads')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('repository', 'text', (c) => c.notNull())
          .addColumn('size', t.int64, (c) => c.notNull())
          .addColumn('started_at', t.int64, (c) => c.notNull())
          .addColumn('updated_at', t.int64, (c) => c.notNull())
          .addColumn('append_generation', t.int64, (c) => c.notNull().defaultTo(0))
          .addColumn('append_expires_at', t.int64)
          .execute();
        await db.schema
          .createIndex('uploads_updated_at_idx')
          .on('uploads')
          .column('updated_at')
          .execute();
      },

      async down(db: Kysely<any>): Promise<void> {
        for (const table of [
          'uploads',
          'tag_history',
          'tags',
          'manifest_children',
          'manifest_blobs',
          'manifests',
          'repository_blobs',
          'blobs',
          'repositories',
        ]) {
          await db.schema.dropTable(table).execute();
        }
      },
    },
    '0002_identity': identityMigration(t),
    '0003_lifecycle': lifecycleMigration(t),
    '0004_tag_rules': tagRulesMigration(t),
    '0005_gc': gcMigration(t),
    '0008_upload_blob': uploadBlobMigration(),
    '0006_quotas_retention': housekeepingMigration(t),
    '0007_events': eventsMigration(t),
    '0009_tag_list_version': tagListVersionMigration(dialect),
    '0010_content_version': contentVersionMigration(dialect),
    '0011_list_leases': listLeaseMigration(dialect),
    '0012_lean_uploads': leanUploadsMigration(dialect),
    '0013_audit_occurrences': auditOccurrencesMigration(),
  };
}

/** Serves the in-code migrations (no file scanning, so it works from the compiled dist). */
export class InCodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: SqlDialect) {}

  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(metadataMigrations(this.dialect));
  }
}

/**
 * Brings the schema up to date. Throws MetadataSchemaTooNewError when the database holds
 * migrations this code does not know, and an Error (with the cause) when a migration fails.
 */
export async function migrateMetadataToLatest(db: Kysely<any>, dialect: SqlDialect): Promise<void> {
  const known = new Set(Object.keys(metadataMigrations(dialect)));
  const unknown = (await executedMigrationNames(db)).filter((name) => !known.has(name));
  if (unknown.length > 0) throw new MetadataSchemaTooNewError(unknown);

  const migrator = new Migrator({ db, provider: new InCodeMigrationProvider(dialect) });
  const { error, results } = await migrator.migrateToLatest();
  if (error === undefined) return;
  // A newer process may have migrated between the check above and the migrator's own check.
  const missing =
    error instanceof Error && /previously executed migration (.+) is missing/.exec(error.message);
  if (missing && missing[1] !== undefined) throw new MetadataSchemaTooNewError([missing[1]]);
  const failed = results?.find((r) => r.status === 'Error')?.migrationName;
  const detail = error instanceof Error ? error.message : String(error);
  throw new Error(
    failed === undefined
      ? `metadata migration failed: ${detail}`
      : `metadata migration ${failed} failed: ${detail}`,
    { cause: error },
  );
}

async function executedMigrationNames(db: Kysely<any>): Promise<string[]> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((table) => table.name === MIGRATION_TABLE)) return [];
  const rows = await db.selectFrom(MIGRATION_TABLE).select('name').execute();
  return rows.map((row: { name: unknown }) => String(row.name));
}
