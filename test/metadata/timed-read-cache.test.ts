// The scale-out nodes' read cache: an entry answers for at most its TTL, counted from the moment
// its lookup was sent, and changes wait that long after their commit (readCaching's `settle`),
// so that an answer loaded before an acknowledged change is never served after it.
import { describe, expect, it } from 'vitest';
import { readCaching } from '../../src/metadata/sql/sql-metadata-store.js';
import { TimedReadCache, waitAtLeast } from '../../src/metadata/sql/read-cache.js';

const limits = { maxEntries: 10, maxBytes: 1000, sizeOf: (v: string) => v.length };

describe('TimedReadCache', () => {
  it('answers from memory within the TTL and asks again after it', async () => {
    let now = 0;
    const cache = new TimedReadCache<string>(100, limits, () => now);
    let loads = 0;
    const load = async () => `v${++loads}`;
    expect(await cache.get('k', load)).toBe('v1');
    now = 99;
    expect(await cache.get('k', load)).toBe('v1');
    now = 100;
    expect(await cache.get('k', load)).toBe('v2');
    expect(loads).toBe(2);
  });

  it('counts the TTL from when the lookup was sent, not from when it answered', async () => {
    let now = 0;
    const cache = new TimedReadCache<string>(100, limits, () => now);
    // A slow lookup: sent at 0, answered at 80, so it may only be served until 100.
    expect(await cache.get('k', async () => ((now = 80), 'old'))).toBe('old');
    now = 99;
    expect(await cache.get('k', async () => 'new')).toBe('old');
    now = 100;
    expect(await cache.get('k', async () => 'new')).toBe('new');
  });

  it('never caches a miss, and forgets an expired entry whose lookup now finds nothing', async () => {
    let now = 0;
    const cache = new TimedReadCache<string>(100, limits, () => now);
    let value: string | null = null;
    const load = async () => value;
    expect(await cache.get('k', load)).toBeNull();
    value = 'pushed';
    expect(await cache.get('k', load)).toBe('pushed'); // new content is visible at once
    value = null;
    now = 150;
    expect(await cache.get('k', load)).toBeNull();
    value = 'again';
    expect(await cache.get('k', load)).toBe('again');
  });

  it('stays within its bounds', async () => {
    const cache = new TimedReadCache<string>(1000, { maxEntries: 3, maxBytes: 160, sizeOf: (v) => v.length }, () => 0);
    let loads = 0;
    for (const key of ['a', 'b', 'c', 'd']) await cache.get(key, async () => (loads++, key.repeat(8)));
    await cache.get('a', async () => (loads++, 'a'.repeat(8))); // dropped as the oldest: loaded again
    await cache.get('d', async () => (loads++, 'x'));
    expect(loads).toBe(5);
    await cache.get('big', async () => (loads++, 'x'.repeat(20))); // over maxBytes / 16: not kept
    await cache.get('big', async () => (loads++, 'x'.repeat(20)));
    expect(loads).toBe(7);
  });
});

describe('waitAtLeast and settle', () => {
  it('waitAtLeast never resolves early', async () => {
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      await waitAtLeast(15);
      expect(performance.now() - start).toBeGreaterThanOrEqual(15);
    }
  });

  it('a change acknowledged after settle() is never answered from an entry loaded before it', async () => {
    const caching = readCaching({ readCacheTtlMs: 30 });
    const cache = caching.cache<string>((v) => v.length)!;
    let stored: string | null = 'v1';
    // Another node reads (and caches) just before the change commits...
    expect(await cache.get('repo:tag', async () => stored)).toBe('v1');
    // ...the change commits, then settles before it is acknowledged...
    stored = null;
    await caching.settle();
    // ...so every read that starts after the acknowledgement sees it.
    expect(await cache.get('repo:tag', async () => stored)).toBeNull();
  });

  it('the exact (SQLite) and the uncached modes do not wait', async () => {
    for (const options of [{ changeVersion: () => 1, readCacheTtlMs: 10_000 }, {}, { readCacheTtlMs: 0 }]) {
      const start = performance.now();
      await readCaching(options).settle();
      expect(performance.now() - start).toBeLessThan(50);
    }
    expect(readCaching({}).cache((v: string) => v.length)).toBeUndefined();
  });
});
