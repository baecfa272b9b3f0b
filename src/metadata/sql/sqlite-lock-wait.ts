import type BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  SelectQueryNode,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
  type SqliteDialectConfig,
} from 'kysely';

/** How long a write waits for another process's write lock before it fails, as busy_timeout did. */
export const WRITE_LOCK_WAIT_MS = 5000;
/** Retries that only yield to the event loop before the waits become 1 ms timers. */
const IMMEDIATE_RETRIES = 4;

/**
 * SQLite has one write lock per database. Its own busy handler waits for the lock by sleeping
 * inside the call, 1 to 100 ms at a time, and better-sqlite3 calls are synchronous: a worker
 * that waited for another worker's write froze its whole event loop meanwhile. This dialect
 * asks for the write lock without waiting (busy_timeout 0 for that one statement) and, when
 * another process holds it, waits on a timer and asks again, so the worker keeps answering other
 * requests. Transactions begin IMMEDIATE, taking the lock up front: nothing inside them waits.
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
    return new LockWaitingSqliteDriver(this.dialectConfig, new WriteLock(this.sqlite));
  }
}

class LockWaitingSqliteDriver extends SqliteDriver {
  private wrapped: { inner: DatabaseConnection; outer: DatabaseConnection } | undefined;

  constructor(
    config: SqliteDialectConfig,
    private readonly lock: WriteLock,
  ) {
    super(config);
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection();
    if (this.wrapped?.inner !== inner) this.wrapped = { inner, outer: new LockWaitingConnection(inner, this.lock) };
    return this.wrapped.outer;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const direct = connection instanceof LockWaitingConnection ? connection.inner : connection;
    await this.lock.acquire(() => direct.executeQuery(CompiledQuery.raw('begin immediate')));
  }
}

class LockWaitingConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly lock: WriteLock,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // Inside a transaction the lock is already held; a SELECT outside one never needs it (also
    // one precompiled from raw SQL, which has no query tree).
    if (this.lock.held() || SelectQueryNode.is(query.query) || isRawSelect(query)) return this.inner.executeQuery<R>(query);
    return this.lock.acquire(() => this.inner.executeQuery<R>(query));
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

class WriteLock {
  private readonly noWait: BetterSqlite3.Statement;
  private readonly restoreWait: BetterSqlite3.Statement;

  constructor(private readonly sqlite: BetterSqlite3.Database) {
    this.noWait = sqlite.prepare('PRAGMA busy_timeout = 0');
    this.restoreWait = sqlite.prepare(`PRAGMA busy_timeout = ${WRITE_LOCK_WAIT_MS}`);
  }

  held(): boolean {
    return this.sqlite.inTransaction;
  }

  /**
   * Runs `statement` (one that takes the write lock, and runs synchronously inside the call) with
   * SQLite's wait switched off; while another process holds the lock, retries after yielding.
   */
  async acquire<T>(statement: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + WRITE_LOCK_WAIT_MS;
    for (let retry = 0; ; retry++) {
      this.noWait.get();
      // The statement runs inside this call (better-sqlite3 is synchronous); a throw becomes a
      // rejection, so the wait is restored before anything else can use the connection.
      const result = (async () => statement())();
      this.restoreWait.get();
      try {
        return await result;
      } catch (error) {
        if (!isBusy(error) || Date.now() >= deadline) throw error;
      }
      await (retry < IMMEDIATE_RETRIES ? yieldOnce() : sleepOneMs());
    }
  }
}

function isRawSelect(query: CompiledQuery): boolean {
  return query.query.kind === 'RawNode' && /^\s*select\b/i.test(query.sql);
}

/** SQLITE_BUSY, or an extended form of it (SQLITE_BUSY_RECOVERY: another process is recovering the WAL). */
function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

const yieldOnce = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleepOneMs = () => new Promise<void>((resolve) => setTimeout(resolve, 1));
