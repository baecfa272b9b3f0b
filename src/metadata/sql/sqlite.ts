import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { migrateMetadataToLatest } from './migrations.js';
import type { Database } from './schema.js';
import { LockWaitingSqliteDialect, isBusy } from './sqlite-lock-wait.js';
import { SqliteCommitProbe } from './sqlite-commit-probe.js';
import { SqlMetadataStore, type SqlMetadataStoreOptions } from './sql-metadata-store.js';

/** Prepared statements kept per connection (the store issues a few dozen distinct ones). */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Opens (creating if needed) a SQLite metadata database and brings its schema up to date.
 * Throws MetadataSchemaTooNewError when the file was migrated by a newer Stowage.
 */
export async function openSqliteMetadataStore(
  file: string,
  options: SqlMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const inMemory = file === ':memory:' || file === '';
  if (!inMemory) mkdirSync(dirname(file), { recursive: true });
  const sqlite = new BetterSqlite3(file);
  let db: Kysely<Database> | undefined;
  let probe: SqliteCommitProbe | undefined;
  try {
    const mode = sqlite.pragma('journal_mode = WAL', { simple: true });
    if (!inMemory && mode !== 'wal') {
      throw new Error(`cannot put SQLite database ${file} in WAL mode (journal_mode is ${String(mode)})`);
    }
    // In WAL mode, synchronous=NORMAL never corrupts the database and loses nothing when the
    // process crashes: a commit is in the WAL (the OS page cache) once it returns. Only a power
    // loss or OS crash can roll back the last transactions, which we accept for speed (FULL
    // would fsync the WAL on every commit).
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    // No waiting inside SQLite: a statement that finds the database locked fails at once and
    // the dialect waits on a timer instead (sqlite-lock-wait.ts).
    sqlite.pragma('busy_timeout = 0');
    // Reads go through a shared memory map of the file instead of each process's private page
    // cache: the kernel keeps one copy for every worker, and a read is a memory access, not a
    // pread. The private cache then only holds pages being written, so 1 MiB is plenty (the
    // 2 MiB default cost each worker about 15 MB of resident memory; bench/README.md, "Memory").
    sqlite.pragma(`mmap_size = ${256 * 1024 * 1024}`);
    sqlite.pragma('cache_size = -1024');

    const connection = withStatementCache(sqlite, STATEMENT_CACHE_SIZE, () => probe?.close());
    db = new Kysely<Database>({ dialect: new LockWaitingSqliteDialect({ database: connection }, sqlite) });
    await migrateMetadataToLatest(db, 'sqlite');
    // First a pread of the WAL-index header: unchanged, nothing committed (sqlite-commit-probe.ts).
    // Then data_version, which moves when another connection (another worker, a CLI) commits;
    // our own writes are counted by the connection. Both only grow, so their sum changes with
    // either. Only when it moved is content_version read: it moves only for changes that can
    // make a cached answer wrong (content-version-migration.ts), not for audit rows or uploads.
    probe = inMemory ? undefined : new SqliteCommitProbe(file);
    const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
    const contentVersion = sqlite.prepare('select version from content_version where id = 1').pluck();
    const changeVersion = contentVersionReader({
      walChanged: probe ? () => probe!.changed() : undefined,
      commits: () => (dataVersion.get() as number) + connection.writes(),
      contentVersion: () => contentVersion.get() as number,
    });
    return new SqlMetadataStore(db, { changeVersion, ...options });
  } catch (error) {
    if (db) await db.destroy();
    else {
      probe?.close();
      sqlite.close();
    }
    throw error;
  }
}

/**
 * The read cache's version (see openSqliteMetadataStore): `contentVersion` read again only when
 * `commits` moved, and `commits` only when the WAL-index header moved (`walChanged`, when there is
 * a file to probe). A read that finds the database busy (another process recovering the WAL)
 * gives NaN, a version no cached entry has, so the cache neither answers nor keeps that lookup;
 * the next call reads everything again.
 */
export function contentVersionReader(reads: { walChanged?: () => boolean; commits: () => number; contentVersion: () => number }): () => number {
  let committed = -1;
  let content = -1;
  let unsure = false;
  return () => {
    if (reads.walChanged && !reads.walChanged() && !unsure) return content;
    try {
      const now = reads.commits();
      if (now !== committed) {
        committed = now;
        content = reads.contentVersion();
      }
      unsure = false;
      return content;
    } catch (error) {
      if (!isBusy(error)) throw error;
      committed = -1; // content may be older than committed says
      unsure = true;
      return Number.NaN;
    }
  };
}

/**
 * Kysely's SQLite driver prepares every query anew; this keeps the most recently used prepared
 * statements by SQL text (the queries are parameterised, so the text repeats). Safe because the
 * driver runs one query at a time on its single connection. It also counts the statements that
 * modify the database (`writes`), after they ran, for the read caches' version.
 */
function withStatementCache(sqlite: BetterSqlite3.Database, size: number, onClose: () => void): SqliteDatabase & { writes(): number } {
  const cache = new Map<string, SqliteStatement>();
  let writes = 0;
  const counted = (statement: BetterSqlite3.Statement): SqliteStatement => {
    if (statement.readonly) return statement;
    const after = <T>(result: T): T => {
      writes++;
      return result;
    };
    return {
      reader: statement.reader,
      all: (parameters) => after(statement.all(parameters as unknown[])),
      run: (parameters) => after(statement.run(parameters as unknown[])),
      *iterate(parameters) {
        try {
          yield* statement.iterate(parameters as unknown[]);
        } finally {
          writes++;
        }
      },
    };
  };
  return {
    writes: () => writes,
    close: () => {
      onClose();
      sqlite.close();
    },
    prepare(text: string): SqliteStatement {
      const cached = cache.get(text);
      if (cached) {
        cache.delete(text);
        cache.set(text, cached);
        return cached;
      }
      const statement = counted(sqlite.prepare(text));
      cache.set(text, statement);
      if (cache.size > size) {
        const oldest = cache.keys().next();
        if (!oldest.done) cache.delete(oldest.value);
      }
      return statement;
    },
  };
}
