import type BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
  type SqliteDialectConfig,
} from 'kysely';

/** How long a write waits for another process's write lock before it fails, as busy_timeout did. */
const WRITE_LOCK_WAIT_MS = 5000;
/** Retries that only yield to the event loop before the waits become 1 ms timers. */
const IMMEDIATE_RETRIES = 4;

/**
 * SQLite has one write lock per database. Its own busy handler waits for the lock by sleeping
 * inside the call, 1 to 100 ms at a time, and better-sqlite3 calls are synchronous: a worker
 * that waited for another worker's write froze its whole event loop meanwhile. So the connection
 * runs with busy_timeout 0 (see sqlite.ts): a statement that finds the lock taken fails at once
 * with SQLITE_BUSY, having done nothing, and this dialect waits on a timer and runs it again, so
 * the worker keeps answering other requests. Transactions begin IMMEDIATE, taking the lock up
 * front: nothing inside them waits. Reads never need the lock in WAL mode; the rare read that
 * finds the database busy (another process recovering the WAL) is retried the same way.
 * bench/README.md, "Small images", has the measurements.
 */
export class LockWaitingSqliteDialect extends SqliteDialect {
  constructor(
    private readonly dialectConfig: SqliteDialectConfig,
    private readonly sqlite: BetterSqlite3.Database,
  ) {
    super(dialectConfig);
  }

  override createDriver(): Driver {
    return new LockWaitingSqliteDriver(this.dialectConfig, this.sqlite);
  }
}

class LockWaitingSqliteDriver extends SqliteDriver {
  private wrapped: { inner: DatabaseConnection; outer: DatabaseConnection } | undefined;

  constructor(
    config: SqliteDialectConfig,
    private readonly sqlite: BetterSqlite3.Database,
  ) {
    super(config);
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection();
    if (this.wrapped?.inner !== inner) this.wrapped = { inner, outer: new LockWaitingConnection(inner, this.sqlite) };
    return this.wrapped.outer;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class LockWaitingConnection implements DatabaseConnection {
  constructor(
    private readonly inner: DatabaseConnection,
    private readonly sqlite: BetterSqlite3.Database,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // better-sqlite3 runs the statement inside the call: SQLITE_BUSY is thrown, not rejected.
    try {
      return this.inner.executeQuery<R>(query);
    } catch (error) {
      // Inside a transaction the lock is already held: a busy error there is not a lock wait.
      if (!isBusy(error) || this.sqlite.inTransaction) return Promise.reject(error);
      return retryWhileBusy(() => this.inner.executeQuery<R>(query));
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/**
 * Runs `statement` again (it failed with SQLITE_BUSY) until it gets through, yielding to the
 * event loop between tries: first a few times at once, then every millisecond, for up to
 * WRITE_LOCK_WAIT_MS, after which the busy error is the answer.
 */
async function retryWhileBusy<T>(statement: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + WRITE_LOCK_WAIT_MS;
  for (let retry = 0; ; retry++) {
    await (retry < IMMEDIATE_RETRIES ? yieldOnce() : sleepOneMs());
    try {
      return await statement();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
    }
  }
}

/** SQLITE_BUSY, or an extended form of it (SQLITE_BUSY_RECOVERY: another process is recovering the WAL). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

const yieldOnce = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleepOneMs = () => new Promise<void>((resolve) => setTimeout(resolve, 1));
