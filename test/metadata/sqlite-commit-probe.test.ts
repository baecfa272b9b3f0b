// The commit probe behind the SQLite read caches: one pread of the WAL-index header must report
// every commit, by this connection or another process's, and stay quiet for reads, or the
// caches would answer from before an acknowledged change (or be emptied for nothing).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteCommitProbe } from '../../src/metadata/sql/sqlite-commit-probe.js';

describe('SQLite commit probe (WAL-index header)', () => {
  let dir: string;
  let own: BetterSqlite3.Database;
  let other: BetterSqlite3.Database;
  let probe: SqliteCommitProbe;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-probe-'));
    const file = join(dir, 'metadata.db');
    own = new BetterSqlite3(file);
    own.pragma('journal_mode = WAL');
    own.exec('create table t (id integer primary key, v text)');
    other = new BetterSqlite3(file);
    probe = new SqliteCommitProbe(file);
  });
  afterEach(async () => {
    probe.close();
    own.close();
    other.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the first call, then every commit of either connection, and nothing else', () => {
    expect(probe.changed()).toBe(true);
    expect(probe.changed()).toBe(false);
    // Reads, and a transaction that wrote nothing, leave the header alone.
    other.prepare('select count(*) from t').get();
    own.prepare('select * from t').all();
    other.exec('begin immediate; rollback');
    expect(probe.changed()).toBe(false);

    for (let i = 0; i < 20; i++) {
      const writer = i % 2 === 0 ? other : own;
      writer.prepare('insert into t (v) values (?)').run(`row ${i}`);
      expect(probe.changed()).toBe(true);
      expect(probe.changed()).toBe(false);
    }
    // A transaction of several statements is one commit.
    other.transaction(() => {
      other.prepare('insert into t (v) values (?)').run('a');
      other.prepare('update t set v = ? where id = 1').run('b');
    })();
    expect(probe.changed()).toBe(true);
    expect(probe.changed()).toBe(false);
  });

  it('reports commits after a checkpoint restarted the WAL', () => {
    other.prepare('insert into t (v) values (?)').run('before');
    probe.changed();
    other.pragma('wal_checkpoint(TRUNCATE)');
    probe.changed(); // a checkpoint may or may not move the header: either is safe
    for (const writer of [own, other, own]) {
      writer.prepare('insert into t (v) values (?)').run('after');
      expect(probe.changed()).toBe(true);
    }
  });
});
