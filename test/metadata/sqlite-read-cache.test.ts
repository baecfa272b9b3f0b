import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VersionedReadCache } from '../../src/metadata/sql/read-cache.js';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';
import type { SqlMetadataStore } from '../../src/metadata/sql/sql-metadata-store.js';
import { testManifest } from '../support/manifests.js';

const blob = { digest: `sha256:${'a'.repeat(64)}`, size: 42 };

const manifest = (label: string) => testManifest(label, [blob.digest]);

// Two stores on one file are two connections, as two cluster workers (or a worker and a CLI)
// are: what one commits, the other must see on its very next read, cache or no cache.
describe('SQLite hot-path read cache', () => {
  let dir: string;
  let reader: SqlMetadataStore;
  let writer: SqlMetadataStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-cache-'));
    reader = await openSqliteMetadataStore(join(dir, 'metadata.db'));
    writer = await openSqliteMetadataStore(join(dir, 'metadata.db'));
    await writer.blobs.link('lib/app', blob);
  });
  afterEach(async () => {
    await reader.close();
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sees a tag moved and a manifest deleted by another connection at once', async () => {
    const one = manifest('1');
    const two = manifest('2');
    await writer.manifests.put('lib/app', one, 'latest');
    for (let i = 0; i < 3; i++) expect((await reader.manifests.getByTag('lib/app', 'latest'))?.digest).toBe(one.digest);
    expect((await reader.manifests.get('lib/app', one.digest))?.digest).toBe(one.digest);

    await writer.manifests.put('lib/app', two, 'latest');
    expect((await reader.manifests.getByTag('lib/app', 'latest'))?.digest).toBe(two.digest);

    await writer.manifests.delete('lib/app', one.digest);
    expect(await reader.manifests.get('lib/app', one.digest)).toBeNull();
    await writer.tags.delete('lib/app', 'latest');
    expect(await reader.manifests.getByTag('lib/app', 'latest')).toBeNull();
  });

  it('sees its own writes at once', async () => {
    const one = manifest('3');
    const two = manifest('4');
    await reader.manifests.put('lib/app', one, 'v1');
    expect((await reader.manifests.getByTag('lib/app', 'v1'))?.digest).toBe(one.digest);
    await reader.manifests.put('lib/app', two, 'v1');
    expect((await reader.manifests.getByTag('lib/app', 'v1'))?.digest).toBe(two.digest);
    await reader.tags.delete('lib/app', 'v1');
    expect(await reader.manifests.getByTag('lib/app', 'v1')).toBeNull();
  });

  it('keeps its cache when another connection commits only audit rows or upload sessions', async () => {
    const one = manifest('5');
    const two = manifest('6');
    await writer.manifests.put('lib/app', one, 'latest');
    expect((await reader.manifests.getByTag('lib/app', 'latest'))?.digest).toBe(one.digest);
    // Counts the tag lookups that reach SQLite (statements run through better-sqlite3's prototype).
    const proto = Object.getPrototypeOf(new BetterSqlite3(':memory:').prepare('select 1')) as { all: (...args: unknown[]) => unknown };
    const all = vi.spyOn(proto, 'all');
    const isTagLookup = (source: string) => source.startsWith('select "m"."digest"') && source.includes('from "tags" as "t"');
    const tagLookups = () => all.mock.contexts.filter((statement) => isTagLookup((statement as { source: string }).source)).length;
    try {
      await writer.control.audit.append([{ at: new Date(), actor: 'alice', actorKind: 'user', address: '127.0.0.1', action: 'manifest.pull', project: 'lib', target: 'lib/app:latest', result: 'success', detail: null }]);
      await writer.uploads.create({ id: '5d0c3c52-6a8e-4a51-9a43-0d7b5c1e2f10', repository: 'lib/app' });
      expect((await reader.manifests.getByTag('lib/app', 'latest'))?.digest).toBe(one.digest);
      expect(tagLookups(), 'answered from the cache').toBe(0);

      await writer.manifests.put('lib/app', two, 'latest');
      expect((await reader.manifests.getByTag('lib/app', 'latest'))?.digest).toBe(two.digest);
      expect(tagLookups(), 'a moved tag empties the cache').toBe(1);
    } finally {
      all.mockRestore();
    }
  });

  it('sees a blob unlinked by another connection at once', async () => {
    for (let i = 0; i < 3; i++) expect(await reader.blobs.getInRepository('lib/app', blob.digest)).toEqual(blob);
    await writer.blobs.unlink('lib/app', blob.digest);
    expect(await reader.blobs.getInRepository('lib/app', blob.digest)).toBeNull();
  });
});

describe('SQLite content_version', () => {
  it('moves for every update or delete that can change a found lookup, and for nothing else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-content-'));
    const store = await openSqliteMetadataStore(join(dir, 'metadata.db'));
    const raw = new BetterSqlite3(join(dir, 'metadata.db'));
    try {
      const one = manifest('7');
      await store.blobs.link('lib/app', blob);
      await store.manifests.put('lib/app', one, 'v1');
      await store.manifests.put('lib/app', one, 'v2');
      const version = () => (raw.prepare('select version from content_version').pluck().get() as number);
      const moves = (statement: string) => {
        const before = version();
        raw.exec(statement);
        return version() - before;
      };
      // Not a change to a found answer: new rows, and columns the lookups do not read.
      await store.control.audit.append([{ at: new Date(), actor: 'a', actorKind: 'user', address: null, action: 'login', project: null, target: null, result: 'success', detail: null }]);
      await store.uploads.create({ id: '6d0c3c52-6a8e-4a51-9a43-0d7b5c1e2f10', repository: 'lib/app' });
      expect(version()).toBe(0);
      expect(moves("update repositories set tags_version = tags_version + 1")).toBe(0);
      expect(moves("update blobs set seen_at = seen_at + 1")).toBe(0);
      expect(moves("update tags set updated_at = updated_at + 1")).toBe(0);
      expect(moves("insert into repositories (name, created_at) values ('lib/other', 0)")).toBe(0);
      // Changes that can make a cached answer wrong.
      expect(moves("update tags set name = 'v3' where name = 'v2'")).toBe(1);
      expect(moves('update manifests set size = size')).toBe(1);
      expect(moves("update repositories set name = 'lib/renamed' where name = 'lib/other'")).toBe(1);
      expect(moves("update blobs set size = size + 1")).toBe(1);
      expect(moves("delete from tags where name = 'v3'")).toBe(1);
      expect(moves('delete from repository_blobs')).toBe(1);
      expect(moves("delete from repositories where name = 'lib/renamed'")).toBe(1);
    } finally {
      raw.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('VersionedReadCache', () => {
  it('serves from memory while the version holds, and loads again once it changes', async () => {
    let version = 1;
    let loads = 0;
    const cache = new VersionedReadCache<string>(() => version, { maxEntries: 10, maxBytes: 1000, sizeOf: (v) => v.length });
    const load = async () => `value-${++loads}`;
    expect(await cache.get('k', load)).toBe('value-1');
    expect(await cache.get('k', load)).toBe('value-1');
    version = 2;
    expect(await cache.get('k', load)).toBe('value-2');
  });

  it('never stores a value loaded while the version changed under it', async () => {
    let version = 1;
    const cache = new VersionedReadCache<string>(() => version, { maxEntries: 10, maxBytes: 1000, sizeOf: (v) => v.length });
    // The load starts at version 1; a change commits while it runs; a reader at version 2
    // resets the cache before the slow load finishes: its old value must not be kept.
    const slow = cache.get('k', async () => {
      version = 2;
      await cache.get('other', async () => 'x');
      return 'stale';
    });
    expect(await slow).toBe('stale');
    expect(await cache.get('k', async () => 'fresh')).toBe('fresh');
  });

  it('stays within its bounds and does not cache absent values', async () => {
    const cache = new VersionedReadCache<string>(() => 1, { maxEntries: 3, maxBytes: 160, sizeOf: (v) => v.length });
    let loads = 0;
    for (const key of ['a', 'b', 'c', 'd']) await cache.get(key, async () => `${key}-${++loads}`);
    // 'a' was evicted (oldest), 'd' is kept.
    expect(await cache.get('a', async () => `a-${++loads}`)).toBe('a-5');
    expect(await cache.get('d', async () => 'reloaded')).toBe('d-4');
    // Larger than a sixteenth of the byte bound: served, never stored.
    const big = 'x'.repeat(20);
    expect(await cache.get('big', async () => big)).toBe(big);
    expect(await cache.get('big', async () => 'loaded again')).toBe('loaded again');
    let missing = 0;
    await cache.get('none', async () => (missing++, null));
    await cache.get('none', async () => (missing++, null));
    expect(missing).toBe(2);
  });
});
