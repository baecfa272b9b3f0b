import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

  it('sees a blob unlinked by another connection at once', async () => {
    for (let i = 0; i < 3; i++) expect(await reader.blobs.getInRepository('lib/app', blob.digest)).toEqual(blob);
    await writer.blobs.unlink('lib/app', blob.digest);
    expect(await reader.blobs.getInRepository('lib/app', blob.digest)).toBeNull();
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
