import type BetterSqlite3 from 'better-sqlite3';
import { Kysely, sql, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { describe, expect, it } from 'vitest';
import { LockWaitingSqliteDialect } from '../../src/metadata/sql/sqlite-lock-wait.js';
import { contentVersionReader } from '../../src/metadata/sql/sqlite.js';

/**
 * The connection runs with busy_timeout 0, so a statement that finds the database locked fails at
 * once with SQLITE_BUSY and the dialect runs it again after yielding. Reads only meet that in
 * rare moments (another process recovering the WAL) that a test cannot bring about with a real
 * database, so here the database is a stand-in whose statements fail with SQLITE_BUSY a set
 * number of times.
 */
function busyDatabase(failures: number) {
  let inTransaction = false;
  const calls: string[] = [];
  let left = failures;
  const busy = () => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
  const database: SqliteDatabase = {
    close() {},
    prepare(text: string): SqliteStatement {
      const run = () => {
        calls.push(text);
        if (left > 0 && !/^(begin|commit|rollback)/.test(text)) {
          left--;
          throw busy();
        }
        if (text.startsWith('begin')) inTransaction = true;
        if (text === 'commit' || text === 'rollback') inTransaction = false;
      };
      return {
        reader: text.startsWith('select'),
        all: () => {
          run();
          return [{ answer: 42 }];
        },
        run: () => {
          run();
          return { changes: 1, lastInsertRowid: 1 };
        },
        *iterate() {},
      };
    },
  };
  const sqlite = {
    get inTransaction() {
      return inTransaction;
    },
  } as unknown as BetterSqlite3.Database;
  const db = new Kysely<Record<string, never>>({ dialect: new LockWaitingSqliteDialect({ database }, sqlite) });
  return { db, calls };
}

describe('SQLite statements that find the database busy', () => {
  it('a read outside a transaction is run again until it gets through', async () => {
    const { db, calls } = busyDatabase(3);
    const { rows } = await sql<{ answer: number }>`select 42 as answer`.execute(db);
    expect(rows).toEqual([{ answer: 42 }]);
    expect(calls).toHaveLength(4);
  });

  it('a write outside a transaction is run again the same way', async () => {
    const { db, calls } = busyDatabase(2);
    const result = await sql`insert into t values (1)`.execute(db);
    expect(result.numAffectedRows).toBe(1n);
    expect(calls).toHaveLength(3);
  });

  it('inside a transaction a busy error is the answer, not a reason to wait', async () => {
    const { db, calls } = busyDatabase(1);
    await expect(db.transaction().execute((tx) => sql`insert into t values (1)`.execute(tx))).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    expect(calls).toEqual(['begin immediate', 'insert into t values (1)', 'rollback']);
  });
});

describe("the read cache's version when the database is busy", () => {
  const busy = () => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY_RECOVERY' });

  it('is no version (NaN) while busy, and read again in full on the next lookup', () => {
    let commits = 1;
    let content = 10;
    let failNext: 'commits' | 'content' | null = null;
    let walChanged = true;
    const version = contentVersionReader({
      walChanged: () => walChanged,
      commits: () => {
        if (failNext === 'commits') throw busy();
        return commits;
      },
      contentVersion: () => {
        if (failNext === 'content') throw busy();
        return content;
      },
    });
    expect(version()).toBe(10);

    // Another process committed a content change; reading its version finds the database busy.
    commits = 2;
    content = 11;
    failNext = 'content';
    expect(version()).toBeNaN();
    // The WAL header has not moved since: the version is still read again, not taken as before.
    failNext = null;
    walChanged = false;
    expect(version()).toBe(11);
    expect(version()).toBe(11);

    walChanged = true;
    failNext = 'commits';
    expect(version()).toBeNaN();
    failNext = null;
    walChanged = false;
    expect(version()).toBe(11);
  });

  it('lets other errors through', () => {
    const version = contentVersionReader({
      commits: () => {
        throw new Error('disk I/O error');
      },
      contentVersion: () => 1,
    });
    expect(() => version()).toThrow('disk I/O error');
  });
});
