import { sql, type Kysely, type Migration } from 'kysely';
import type { SqlDialect } from './schema.js';

/**
 * 0011_list_leases (PostgreSQL only): the listing leases of scale-out nodes (list-leases.ts).
 * UNLOGGED: a lease is worth nothing after a crash, and writing one must not wait for the WAL.
 * SQLite workers see every commit through `data_version`: nothing to create there.
 */
export function listLeaseMigration(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      if (dialect !== 'postgres') return;
      await sql`create unlogged table list_leases (key text collate "C" primary key, until double precision not null)`.execute(db);
    },
    async down(db: Kysely<any>): Promise<void> {
      if (dialect !== 'postgres') return;
      await sql`drop table list_leases`.execute(db);
    },
  };
}
