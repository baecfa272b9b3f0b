import { sql, type Kysely, type Migration } from 'kysely';
import type { SqlDialect } from './schema.js';

/**
 * Statements that can change the answer of a hot-path lookup that found something: a manifest
 * by tag or digest, a blob in a repository (the queries in sql-metadata-store.ts). Those look up
 * one row by a unique key, so a new row never changes a found answer; only an update of the
 * columns they read or join on, or a delete, does.
 */
const CHANGES: Array<{ name: string; on: string; when?: string }> = [
  { name: 'tags_delete', on: 'delete on tags' },
  { name: 'tags_update', on: 'update on tags', when: 'old.manifest_id is not new.manifest_id or old.name is not new.name or old.repository_id is not new.repository_id' },
  { name: 'manifests_delete', on: 'delete on manifests' },
  { name: 'manifests_update', on: 'update on manifests' },
  { name: 'repository_blobs_delete', on: 'delete on repository_blobs' },
  { name: 'repository_blobs_update', on: 'update on repository_blobs' },
  { name: 'blobs_delete', on: 'delete on blobs' },
  { name: 'blobs_update', on: 'update on blobs', when: 'old.digest is not new.digest or old.size is not new.size' },
  { name: 'repositories_delete', on: 'delete on repositories' },
  { name: 'repositories_update', on: 'update on repositories', when: 'old.name is not new.name or old.id is not new.id' },
];

/**
 * 0010_content_version (SQLite only): `content_version.version` counts the changes that can make
 * a cached hot-path answer wrong, kept by triggers for every writer. A worker's read cache is
 * checked against `PRAGMA data_version` first (free when nothing committed); when something did,
 * this counter tells whether it was such a change, or only an audit row, an upload session, an
 * event or a pull count, which then no longer empty every worker's cache. PostgreSQL nodes use a
 * timed cache instead (read-cache.ts): nothing to create there.
 */
export function contentVersionMigration(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      if (dialect !== 'sqlite') return;
      await sql`create table content_version (id integer primary key check (id = 1), version integer not null)`.execute(db);
      await sql`insert into content_version (id, version) values (1, 0)`.execute(db);
      for (const change of CHANGES) {
        const when = change.when ? sql.raw(` when ${change.when}`) : sql``;
        await sql`create trigger ${sql.raw(`content_version_${change.name}`)} after ${sql.raw(change.on)}${when}
                  begin update content_version set version = version + 1 where id = 1; end`.execute(db);
      }
    },
    async down(db: Kysely<any>): Promise<void> {
      if (dialect !== 'sqlite') return;
      for (const change of CHANGES) await sql`drop trigger ${sql.raw(`content_version_${change.name}`)}`.execute(db);
      await sql`drop table content_version`.execute(db);
    },
  };
}
