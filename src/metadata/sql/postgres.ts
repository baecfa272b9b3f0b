import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { migrateMetadataToLatest } from './migrations.js';
import type { Database } from './schema.js';
import { SqlMetadataStore, type SqlMetadataStoreOptions } from './sql-metadata-store.js';

export interface PostgresMetadataStoreOptions extends SqlMetadataStoreOptions {
  /** Connections in this process's pool. Default 10. */
  poolSize?: number;
  /** Milliseconds after which PostgreSQL cancels a statement (0: never). Default 30000. */
  statementTimeout?: number;
  /** Milliseconds to wait for a connection (a new one, or a free one from the pool). Default 10000. */
  connectTimeout?: number;
}

/**
 * Session-level advisory lock held while migrating, so that nodes starting together migrate one
 * after the other (the others then find nothing left to do). Its own key: the 64-bit FNV-1a
 * hash of "stowage.metadata.migrations".
 */
export const MIGRATION_LOCK_KEY = '4331460114452406641';

/** PostgreSQL's int8 type: parsed to a number (sizes, timestamps and ids stay far below 2^53). */
const INT8_OID = 20;

/**
 * Opens a pool on a PostgreSQL database and brings the schema up to date under an advisory lock.
 * Throws MetadataSchemaTooNewError when the database was migrated by a newer Stowage.
 */
export async function openPostgresMetadataStore(
  url: string,
  options: PostgresMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    statement_timeout: options.statementTimeout ?? 30_000,
    connectionTimeoutMillis: options.connectTimeout ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: 'stowage',
    // Per pool, not pg's global parser table: the store reads int8 as numbers.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection that the server closes (restart, failover) emits 'error' on the pool;
  // unhandled, that would kill the process. The next query simply opens a new connection.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateUnderLock(db);
    return new SqlMetadataStore(db, options);
  } catch (error) {
    await db.destroy();
    throw error;
  }
}

/**
 * Runs the migrations on one connection holding MIGRATION_LOCK_KEY. Kysely's migrator takes a
 * lock of its own, but only after creating its bookkeeping table, which two nodes would race on.
 */
async function migrateUnderLock(db: Kysely<Database>): Promise<void> {
  await db.connection().execute(async (conn) => {
    // Waiting for another node's migration must not hit the statement timeout.
    await sql`set statement_timeout = 0`.execute(conn);
    await sql`select pg_advisory_lock(${sql.lit(MIGRATION_LOCK_KEY)}::bigint)`.execute(conn);
    try {
      await migrateMetadataToLatest(conn, 'postgres');
    } finally {
      await sql`select pg_advisory_unlock(${sql.lit(MIGRATION_LOCK_KEY)}::bigint)`.execute(conn).catch(() => undefined);
      await sql`reset statement_timeout`.execute(conn).catch(() => undefined);
    }
  });
}
