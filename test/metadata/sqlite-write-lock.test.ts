import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';
import type { SqlMetadataStore } from '../../src/metadata/sql/sql-metadata-store.js';

/**
 * Another process (a second worker, a CLI command) holding SQLite's write lock: a write here must
 * wait for it on a timer, not in a sleep inside SQLite that freezes the whole event loop.
 * The "other process" is a second connection in this process: its lock is released from a timer,
 * which can only fire if the waiting write leaves the event loop running.
 */
describe('SQLite write lock held by another connection', () => {
  let dir: string;
  let store: SqlMetadataStore;
  let other: BetterSqlite3.Database;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-sqlite-lock-'));
    store = await openSqliteMetadataStore(join(dir, 'metadata.db'));
    other = new BetterSqlite3(join(dir, 'metadata.db'));
  });

  afterEach(async () => {
    if (other.inTransaction) other.exec('rollback');
    other.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Holds the write lock for `ms`, counting the event loop's ticks meanwhile. */
  function holdLock(ms: number): Promise<{ ticks: number }> {
    other.exec('begin immediate');
    other.prepare("insert into repositories (name, created_at) values ('held/by-other', 0)").run();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    return new Promise((resolve) =>
      setTimeout(() => {
        clearInterval(ticker);
        other.exec('commit');
        resolve({ ticks });
      }, ms),
    );
  }

  it('a transaction waits for the lock while the event loop keeps running, then commits', async () => {
    const blob = { digest: `sha256:${'b'.repeat(64)}`, size: 7 };
    const held = holdLock(300);
    const started = performance.now();
    await store.blobs.link('lib/app', blob);
    const waited = performance.now() - started;
    const { ticks } = await held;

    expect(waited).toBeGreaterThanOrEqual(250); // it did wait for the other connection
    expect(ticks).toBeGreaterThan(10); // ...without freezing this process
    expect(await store.blobs.getInRepository('lib/app', blob.digest)).toEqual(blob);
    // The other connection's write is there too: neither overwrote the other.
    expect(other.prepare("select count(*) as n from repositories where name = 'held/by-other'").get()).toEqual({ n: 1 });
  });

  it('a single-statement write outside a transaction waits the same way', async () => {
    const held = holdLock(200);
    const started = performance.now();
    const upload = await store.uploads.create({ id: '0b6f3c52-6a8e-4a51-9a43-0d7b5c1e2f10', repository: 'lib/app' });
    const waited = performance.now() - started;
    const { ticks } = await held;

    expect(waited).toBeGreaterThanOrEqual(150);
    expect(ticks).toBeGreaterThan(5);
    expect(await store.uploads.get(upload.id)).toMatchObject({ id: upload.id, repository: 'lib/app', size: 0 });
  });

  it('reads outside a transaction do not wait for the lock', async () => {
    const blob = { digest: `sha256:${'c'.repeat(64)}`, size: 3 };
    await store.blobs.link('lib/app', blob);
    const held = holdLock(300);
    const started = performance.now();
    expect(await store.blobs.getInRepository('lib/app', blob.digest)).toEqual(blob);
    expect(performance.now() - started).toBeLessThan(150);
    await held;
  });
});
