import { Kysely, PostgresDialect, isCompilable, sql, type Compilable, type CompiledQuery, type KyselyConfig, type PostgresPool, type PostgresPoolClient, type QueryResult } from 'kysely';
import pg from 'pg';
import { MetadataUnavailableError } from '../metadata-store.js';
import { migrateMetadataToLatest } from './migrations.js';
import { HotLookups } from './postgres-batch.js';
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

/**
 * How long a node may answer a hot lookup (manifest by tag or digest, blob in a repository) from
 * its own memory, and so how long every tag move and deletion waits after its commit before it
 * is acknowledged (read-cache.ts, TimedReadCache). A constant, not a setting: every node sharing
 * the database must use the same value. 100 ms: a hot manifest is then asked of PostgreSQL at
 * most ten times a second per process, and a tag move or delete takes 0.1 s longer.
 */
export const SHARED_READ_CACHE_MS = 100;

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
  const connectTimeout = options.connectTimeout ?? 10_000;
  // Migrations on a connection of their own, without timeouts: waiting for another node's
  // migration, or migrating a large table, may take long.
  const migrator = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: guarded(newPool(url, { max: 1, connectionTimeoutMillis: connectTimeout, application_name: 'stowage-migrate' })) }),
  });
  try {
    await migrateUnderLock(migrator);
  } finally {
    await migrator.destroy();
  }
  const statementTimeout = options.statementTimeout ?? 30_000;
  const pool = newPool(url, {
    max: options.poolSize ?? 10,
    statement_timeout: statementTimeout,
    // Bounds a statement on a connection that went silent (the server's timeout cannot fire then).
    ...(statementTimeout > 0 ? { query_timeout: statementTimeout + 5_000 } : {}),
    connectionTimeoutMillis: connectTimeout,
    idleTimeoutMillis: 30_000,
    application_name: 'stowage',
  });
  const guardedPool = guarded(pool);
  // Two hot-path statements in flight per process: the fewer, the larger the batches (measured
  // at 16 concurrent lookups: 1 → 27 µs node + 13 µs PostgreSQL per lookup, 2 → 35 + 20, 4 → 60
  // + 38, 8 → 50–80 + 40–60), and two keep one slow statement from holding up every read.
  const hot = new HotLookups(guardedPool.run, 2);
  return new SqlMetadataStore(new PostgresKysely({ dialect: new PostgresDialect({ pool: guardedPool }) }, hot), {
    readCacheTtlMs: SHARED_READ_CACHE_MS,
    ...options,
  });
}

/**
 * Kysely whose top-level `executeQuery` (only the precompiled hot-path queries use it: manifest by
 * tag or digest, blob in a repository, a repository's tag version) goes to HotLookups: straight
 * to a pooled connection (check out, one named statement, release), and under load in batches.
 * Kysely's own path (runtime driver, connection provider, executor) cost about as much node CPU
 * as decoding the answer. Queries built with the query builder and transactions take Kysely's
 * path as before.
 */
class PostgresKysely extends Kysely<Database> {
  constructor(
    config: KyselyConfig,
    private readonly hot: HotLookups,
  ) {
    super(config);
  }

  override executeQuery<R>(query: CompiledQuery<R> | Compilable<R>): Promise<QueryResult<R>> {
    const compiled = isCompilable(query) ? query.compile() : query;
    return this.hot.lookup<R>(compiled.sql, compiled.parameters);
  }
}

function newPool(url: string, config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    ...config,
    // Per pool, not pg's global parser table: the store reads int8 as numbers.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection that the server closes (restart, failover) emits 'error' on the pool;
  // unhandled, that would kill the process. The next query simply opens a new connection.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs the migrations on one connection holding MIGRATION_LOCK_KEY. Kysely's migrator takes a
 * lock of its own, but only after creating its bookkeeping table, which two nodes would race on.
 */
async function migrateUnderLock(db: Kysely<Database>): Promise<void> {
  await db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(${sql.lit(MIGRATION_LOCK_KEY)}::bigint)`.execute(conn);
    try {
      await migrateMetadataToLatest(conn, 'postgres');
    } finally {
      await sql`select pg_advisory_unlock(${sql.lit(MIGRATION_LOCK_KEY)}::bigint)`.execute(conn).catch(() => undefined);
    }
  });
}

/**
 * SQLSTATEs of a database that is not there for us: connection exceptions (class 08), shutdown
 * or start-up in progress, too many connections, and statements cancelled by statement_timeout.
 */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function isUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (typeof e?.code === 'string' && (e.code.startsWith('08') || UNAVAILABLE_STATES.has(e.code) || NETWORK_ERRORS.has(e.code))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|not queryable|connection error/i.test(e?.message ?? '');
}

function unavailable(error: unknown): MetadataUnavailableError {
  const e = error as { code?: string; message?: string };
  const detail = e?.code === '57014' ? 'statement timeout' : (e?.message ?? String(error));
  return new MetadataUnavailableError(`metadata database unavailable: ${detail}`, { cause: error });
}

/**
 * Names for SQL texts that recur, so that pg prepares them once per connection (parse and plan
 * once) instead of at every execution: the hot paths (manifest by tag or digest, blob in a
 * repository) run a few fixed texts. Only texts seen twice get a name, and at most `limit`
 * of them, so that one-off texts (IN lists of every length) cannot grow each connection's
 * prepared statements without bound.
 */
class StatementNames {
  private readonly names = new Map<string, string>();
  private readonly seen = new Set<string>();

  constructor(private readonly limit = 200) {}

  nameOf(text: string): string | undefined {
    const name = this.names.get(text);
    if (name !== undefined || this.names.size >= this.limit) return name;
    if (!this.seen.has(text)) {
      if (this.seen.size >= 4 * this.limit) this.seen.clear();
      this.seen.add(text);
      return undefined;
    }
    const fresh = `stowage_${this.names.size}`;
    this.names.set(text, fresh);
    return fresh;
  }
}

interface GuardedPool extends PostgresPool {
  /** One statement on a connection of the pool (checked out and released around it). */
  run<R>(text: string, values: ReadonlyArray<unknown>): Promise<QueryResult<R>>;
}

/** A pooled pg connection as Kysely sees it; one per pg client, kept for the client's life. */
interface GuardedClient extends PostgresPoolClient {
  /** Set when the connection failed: it is discarded at release, not reused. */
  broken: boolean;
}

/**
 * The pool as Kysely sees it, with the database's own failures (unreachable, restarting, too
 * slow) turned into MetadataUnavailableError; a connection that broke is discarded, not reused.
 * The wrapper of each pg client is made once (Kysely keys its connection objects by it).
 */
function guarded(pool: pg.Pool): GuardedPool {
  const statements = new StatementNames();
  const wrappers = new WeakMap<pg.PoolClient, GuardedClient>();

  const wrap = (client: pg.PoolClient): GuardedClient => {
    const wrapper: GuardedClient = {
      broken: false,
      query(text: unknown, parameters?: ReadonlyArray<unknown>) {
        if (typeof text !== 'string') return (client.query as (cursor: unknown) => unknown)(text);
        const name = statements.nameOf(text);
        const values = parameters as unknown[];
        return (name === undefined ? client.query(text, values) : client.query({ name, text, values })).catch((error: unknown) => {
          if (!isUnavailable(error)) throw error;
          wrapper.broken = true;
          throw unavailable(error);
        });
      },
      release(destroy?: boolean) {
        const broken = destroy || wrapper.broken;
        if (broken) wrappers.delete(client);
        client.release(broken);
      },
    } as GuardedClient;
    // A checked-out connection that breaks between queries emits 'error' on the client, where
    // (unlike on idle ones) the pool listens no more: unheard, it would kill the process.
    client.on('error', () => {
      wrapper.broken = true;
    });
    wrappers.set(client, wrapper);
    return wrapper;
  };

  const connect = async (): Promise<GuardedClient> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw isUnavailable(error) ? unavailable(error) : error;
    }
    return wrappers.get(client) ?? wrap(client);
  };

  return {
    connect,
    run: async <R,>(text: string, values: ReadonlyArray<unknown>): Promise<QueryResult<R>> => {
      const client = await connect();
      try {
        const result = (await client.query(text, values)) as pg.QueryResult;
        return { rows: result.rows as R[], ...(result.command === 'SELECT' ? {} : { numAffectedRows: BigInt(result.rowCount ?? 0) }) };
      } finally {
        client.release();
      }
    },
    end: () => pool.end(),
  };
}
