// Pull statistics: counted in memory on the request path, written in batches; the counters on
// SQLite and PostgreSQL; shown on the management API's tag listing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PullRecorder } from '../../src/control/pull-stats.js';
import type { PullIncrement, PullStatsQueries } from '../../src/metadata/housekeeping-store.js';
import { createTestApp, type TestApp } from '../support/http-app.js';
import { metadataBackends, type MetadataBackend } from '../support/metadata-backends.js';

/** A store that only counts the writes it receives. */
function countingStore(): PullStatsQueries & { batches: PullIncrement[][] } {
  const batches: PullIncrement[][] = [];
  return {
    batches,
    add: async (batch) => void batches.push(batch),
    manifests: async () => new Map(),
    tags: async () => new Map(),
  };
}

describe('PullRecorder', () => {
  it('writes nothing per pull: one batch per flush, with pulls of the same manifest and tag merged', async () => {
    const store = countingStore();
    let now = 1000;
    const recorder = new PullRecorder(store, { flushMs: 3_600_000, now: () => now });
    for (let i = 0; i < 1000; i++) {
      now += 1;
      recorder.record('team/app', 'sha256:aa', i % 2 === 0 ? 'v1' : null);
    }
    recorder.record('team/lib', 'sha256:bb', 'latest');
    expect(store.batches).toHaveLength(0);
    await recorder.flush();
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]).toEqual([
      { repository: 'team/app', digest: 'sha256:aa', tag: 'v1', count: 500, lastAt: 1999 },
      { repository: 'team/app', digest: 'sha256:aa', tag: null, count: 500, lastAt: 2000 },
      { repository: 'team/lib', digest: 'sha256:bb', tag: 'latest', count: 1, lastAt: 2000 },
    ]);
    await recorder.flush();
    expect(store.batches).toHaveLength(1); // nothing new, nothing written
  });

  it('flushes by itself after the interval, and at once when the batch is full', async () => {
    const store = countingStore();
    const timed = new PullRecorder(store, { flushMs: 20 });
    timed.record('a/b', 'sha256:aa', null);
    const deadline = Date.now() + 10_000;
    while (store.batches.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(store.batches).toHaveLength(1);
    const full = new PullRecorder(store, { flushMs: 3_600_000, batchSize: 3 });
    for (const tag of ['a', 'b', 'c']) full.record('a/b', 'sha256:aa', tag);
    await full.flush(); // waits for the write the third record started
    expect(store.batches).toHaveLength(2);
    expect(store.batches[1]).toHaveLength(3);
  });
});

const backends = metadataBackends('pulls');

describe.each(backends)('pull counters on %s', (_name, open) => {
  let backend: MetadataBackend;
  beforeAll(async () => {
    backend = await open();
  }, 60_000);
  afterAll(async () => backend?.cleanup());

  it('add up across batches, keep the latest time, and skip repositories that do not exist', async () => {
    const store = backend.stores[0]!;
    await store.blobs.link('team/app', { digest: `sha256:${'1'.repeat(64)}`, size: 1 });
    const d = `sha256:${'a'.repeat(64)}`;
    await store.pulls.add([
      { repository: 'team/app', digest: d, tag: 'v1', count: 3, lastAt: 5000 },
      { repository: 'team/app', digest: d, tag: null, count: 2, lastAt: 7000 },
      { repository: 'gone/app', digest: d, tag: 'v1', count: 9, lastAt: 9000 },
    ]);
    await store.pulls.add([{ repository: 'team/app', digest: d, tag: 'v1', count: 1, lastAt: 6000 }]);
    expect(await store.pulls.manifests('team/app', [d])).toEqual(new Map([[d, { pulls: 6, lastPulledAt: new Date(7000) }]]));
    expect(await store.pulls.tags('team/app', ['v1', 'v2'])).toEqual(new Map([['v1', { pulls: 4, lastPulledAt: new Date(6000) }]]));
    expect((await store.pulls.manifests('gone/app', [d])).size).toBe(0);
  });
});

describe('pull statistics through the registry and the API', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp();
  });
  afterAll(async () => app?.cleanup());

  it('count manifest GETs by tag and by digest (not HEADs), written off the request path, shown on the tag listing', async () => {
    const image = await app.pushImage('team/app', 'v1');
    await app.pushManifest('team/app', 'other', image.manifest);
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    for (let i = 0; i < 3; i++) expect((await app.get('/v2/team/app/manifests/v1', accept)).statusCode).toBe(200);
    for (let i = 0; i < 2; i++) expect((await app.get(`/v2/team/app/manifests/${image.digest}`, accept)).statusCode).toBe(200);
    expect((await app.head('/v2/team/app/manifests/v1', accept)).statusCode).toBe(200);
    expect((await app.get('/v2/team/app/manifests/nope', accept)).statusCode).toBe(404);
    // Nothing written yet: the GETs only counted in memory.
    expect((await app.app.metadata.pulls.manifests('team/app', [image.digest])).size).toBe(0);

    const listing = await app.get('/api/v1/repositories/team/app/-/tags');
    expect(listing.statusCode, listing.body).toBe(200);
    const byName = Object.fromEntries(listing.json().items.map((t: { name: string }) => [t.name, t]));
    expect(byName.v1).toMatchObject({ digest: image.digest, pulls: 3, manifestPulls: 5 });
    expect(byName.other).toMatchObject({ pulls: 0, lastPulledAt: null, manifestPulls: 5 });
    expect(Date.parse(byName.v1.lastPulledAt)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(byName.other.manifestLastPulledAt)).toBeGreaterThanOrEqual(Date.parse(byName.v1.lastPulledAt));
  });

  it('show every manifest with its pulls, untagged ones too', async () => {
    const untagged = await app.pushImage('team/app', 'tmp');
    expect((await app.delete('/v2/team/app/manifests/tmp')).statusCode).toBe(202);
    expect((await app.get(`/v2/team/app/manifests/${untagged.digest}`, { accept: 'application/vnd.oci.image.manifest.v1+json' })).statusCode).toBe(200);
    const listing = await app.get('/api/v1/repositories/team/app/-/manifests');
    expect(listing.statusCode, listing.body).toBe(200);
    const byDigest = Object.fromEntries(listing.json().items.map((m: { digest: string }) => [m.digest, m]));
    expect(byDigest[untagged.digest]).toMatchObject({ tags: [], pulls: 1, inIndex: false });
    expect(Object.values(byDigest).find((m: any) => m.tags.includes('v1'))).toMatchObject({ tags: ['other', 'v1'], pulls: 5 });
    expect((await app.get('/api/v1/repositories/team/nope/-/manifests')).statusCode).toBe(404);
  });
});
