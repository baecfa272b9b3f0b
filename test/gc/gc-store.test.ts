// Garbage collection's metadata steps (candidates, mark, sweep, the rescue by a new push, the
// one-run lease), on SQLite and PostgreSQL, with an injected clock.
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MetadataStore } from '../../src/metadata/metadata-store.js';
import { metadataBackends } from '../support/metadata-backends.js';
import { testManifest } from '../support/manifests.js';

const HOUR = 3_600_000;

function blob(name: string): { digest: string; size: number } {
  return { digest: `sha256:${createHash('sha256').update(`blob ${name}`).digest('hex')}`, size: 100 + name.length };
}

const manifest = testManifest;

const backends = metadataBackends('gc');

describe.each(backends)('garbage collection metadata: %s', (_name, open) => {
  let store: MetadataStore;
  let cleanup: () => Promise<void>;
  let clock = 0;
  const start = 1_800_000_000_000;
  const at = (ms: number) => new Date(start + ms);

  beforeEach(async () => {
    clock = start;
    const backend = await open(() => clock);
    store = backend.stores[0]!;
    cleanup = () => backend.cleanup();
  });
  afterEach(async () => {
    await cleanup();
  });

  it('candidates: unreferenced, not seen since the cutoff, unpinned, by digest, optionally per project', async () => {
    await store.blobs.link('team/app', blob('used'));
    await store.blobs.link('team/app', blob('loose'));
    await store.blobs.link('other/app', blob('elsewhere'));
    await store.manifests.put('team/app', manifest('m', [blob('used').digest]));
    clock += 2 * HOUR;
    const expected = [blob('loose'), blob('elsewhere')].map((b) => b.digest).sort();
    expect((await store.gc.candidates(at(HOUR), { limit: 10 })).map((c) => c.digest)).toEqual(expected);
    expect((await store.gc.candidates(at(HOUR), { limit: 10 }, 'team')).map((c) => c.digest)).toEqual([blob('loose').digest]);
    expect((await store.gc.candidates(at(HOUR), { limit: 10 }, 'tea')).map((c) => c.digest)).toEqual([]);
    expect(await store.gc.candidates(at(-1), { limit: 10 })).toEqual([]);
    const first = await store.gc.candidates(at(HOUR), { limit: 1 });
    expect((await store.gc.candidates(at(HOUR), { limit: 5, last: first[0]!.digest })).map((c) => c.digest)).toEqual([expected[1]]);
    // Pushing or mounting it again renews the time the grace period counts from.
    await store.blobs.link('team/app', blob('loose'));
    expect((await store.gc.candidates(at(HOUR), { limit: 10 })).map((c) => c.digest)).toEqual([blob('elsewhere').digest]);
    // A completion storing its bytes pins it.
    clock += 2 * HOUR;
    await store.uploads.create({ id: 'u1', repository: 'team/app' });
    const lease = (await store.uploads.beginAppend('u1', 0, 60_000))!;
    await store.uploads.reserve('u1', 'team/app', blob('elsewhere'), lease);
    expect((await store.gc.candidates(at(3 * HOUR), { limit: 10 })).map((c) => c.digest)).toEqual([blob('loose').digest]);
  });

  it('mark: unlinks a candidate everywhere and hides it; referenced, fresh or pinned blobs are left alone', async () => {
    const loose = blob('loose');
    await store.blobs.link('a', loose);
    await store.blobs.link('b', loose);
    await store.blobs.link('a', blob('used'));
    await store.manifests.put('a', manifest('m', [blob('used').digest]));
    expect(await store.gc.mark(loose.digest, at(-1))).toBe(false); // inside the grace period
    clock += 2 * HOUR;
    expect(await store.gc.mark(blob('used').digest, at(HOUR))).toBe(false);
    expect(await store.gc.mark(loose.digest, at(HOUR))).toBe(true);
    expect(await store.gc.mark(loose.digest, at(HOUR))).toBe(false); // already marked
    // Absent to HEAD, GET, mounts and manifests: no link, and `get` ignores marked rows.
    expect(await store.blobs.getInRepository('a', loose.digest)).toBeNull();
    expect(await store.blobs.getInRepository('b', loose.digest)).toBeNull();
    expect(await store.blobs.get(loose.digest)).toBeNull();
    expect(await store.blobs.mount('c', loose.digest, async () => true)).toBeNull();
    await expect(store.manifests.put('a', manifest('n', [loose.digest]))).rejects.toMatchObject({ name: 'MissingReferenceError', digest: loose.digest });
    expect(await store.gc.candidates(at(HOUR), { limit: 10 })).toEqual([]);
    expect((await store.gc.marked({ limit: 10 })).map((b) => b.digest)).toEqual([loose.digest]);
  });

  it('mount: only a live blob whose bytes are confirmed under the lock', async () => {
    await store.blobs.link('a', blob('x'));
    expect(await store.blobs.mount('b', blob('x').digest, async () => false)).toBeNull();
    expect(await store.blobs.getInRepository('b', blob('x').digest)).toBeNull();
    expect(await store.blobs.mount('b', blob('x').digest, async () => true)).toEqual(blob('x'));
    expect(await store.blobs.getInRepository('b', blob('x').digest)).toEqual(blob('x'));
    expect(await store.blobs.mount('b', blob('unknown').digest, async () => true)).toBeNull();
  });

  it('sweep: deletes the bytes of rows still marked, then the rows; a failure changes nothing', async () => {
    for (const name of ['x', 'y', 'kept']) await store.blobs.link('a', blob(name));
    clock += 2 * HOUR;
    await store.gc.mark(blob('x').digest, at(HOUR));
    await store.gc.mark(blob('y').digest, at(HOUR));
    const digests = [blob('x').digest, blob('y').digest, blob('kept').digest];
    await expect(store.gc.sweep(digests, async () => Promise.reject(new Error('object store down')))).rejects.toThrow('object store down');
    expect(await store.gc.marked({ limit: 10 })).toHaveLength(2);
    const deleted: string[] = [];
    const swept = await store.gc.sweep(digests, async (d) => void deleted.push(...d));
    expect(deleted.sort()).toEqual([blob('x').digest, blob('y').digest].sort());
    expect(swept.map((b) => b.digest).sort()).toEqual(deleted);
    expect(await store.gc.marked({ limit: 10 })).toEqual([]);
    expect(await store.blobs.getInRepository('a', blob('kept').digest)).toEqual(blob('kept'));
    expect(await store.blobs.totalSize()).toBe(blob('kept').size);
  });

  it('a new push rescues a marked blob: reserve clears the mark, the sweep leaves it, completion links it', async () => {
    const b = blob('rescued');
    await store.blobs.link('a', b);
    clock += 2 * HOUR;
    expect(await store.gc.mark(b.digest, at(HOUR))).toBe(true);
    await store.uploads.create({ id: 'u2', repository: 'a' });
    const lease = (await store.uploads.beginAppend('u2', 0, 60_000))!;
    await store.uploads.reserve('u2', 'a', b, lease);
    expect(await store.gc.sweep([b.digest], async () => Promise.reject(new Error('must not delete')))).toEqual([]);
    // Pinned: no later run marks it while the completion stores its bytes.
    clock += 5 * HOUR;
    expect(await store.gc.mark(b.digest, at(4 * HOUR))).toBe(false);
    await store.uploads.complete('u2', b, lease);
    expect(await store.blobs.getInRepository('a', b.digest)).toEqual(b);
    // A one-request upload pins through a session row of its own, removed by its completion.
    await store.uploads.reserve('u3', 'a', blob('mono'), undefined);
    expect(await store.uploads.get('u3')).not.toBeNull();
    await store.uploads.complete('u3', blob('mono'));
    expect(await store.uploads.get('u3')).toBeNull();
    expect(await store.blobs.getInRepository('a', blob('mono').digest)).toEqual(blob('mono'));
  });

  it('a push after the sweep records the blob anew', async () => {
    const b = blob('gone');
    await store.blobs.link('a', b);
    clock += 2 * HOUR;
    await store.gc.mark(b.digest, at(HOUR));
    await store.gc.sweep([b.digest], async () => undefined);
    await store.uploads.reserve('u4', 'a', b, undefined);
    await store.uploads.complete('u4', b);
    expect(await store.blobs.getInRepository('a', b.digest)).toEqual(b);
    expect(await store.gc.marked({ limit: 10 })).toEqual([]);
  });

  it('one run at a time: the lease, its renewal and its expiry', async () => {
    const first = await store.gc.begin({ graceMs: HOUR, project: null, actor: 'admin' }, 15_000);
    expect(first.started).toBe(true);
    expect(first.run).toMatchObject({ status: 'running', phase: 'starting', graceMs: HOUR, actor: 'admin', project: null });
    const second = await store.gc.begin({ graceMs: HOUR, project: 'team', actor: 'bob' }, 15_000);
    expect(second).toMatchObject({ started: false, run: { id: first.run.id } });
    clock += 10_000;
    expect(await store.gc.renew(first.run.id, 15_000)).toBe(true);
    clock += 10_000;
    expect((await store.gc.begin({ graceMs: HOUR, project: null, actor: 'bob' }, 15_000)).started).toBe(false);
    const progress = { phase: 'sweeping' as const, blobsExamined: 3, bytesExamined: 300, blobsMarked: 2, blobsFreed: 1, bytesFreed: 100, uploadsRemoved: 0 };
    await store.gc.progress(first.run.id, progress);
    expect(await store.gc.run(first.run.id)).toMatchObject({ ...progress, status: 'running' });
    const done = await store.gc.finish(first.run.id, 'succeeded', { ...progress, phase: 'done' }, null);
    expect(done).toMatchObject({ status: 'succeeded', phase: 'done', blobsFreed: 1, finishedAt: at(20_000) });
    // Released: the next starts at once. Its process dies: once the lease expires, another starts.
    const third = await store.gc.begin({ graceMs: HOUR, project: null, actor: 'carol' }, 15_000);
    expect(third.started).toBe(true);
    clock += 16_000;
    expect(await store.gc.renew(third.run.id, 15_000)).toBe(true); // not taken yet: renewal still works
    clock += 16_000;
    const fourth = await store.gc.begin({ graceMs: HOUR, project: null, actor: 'dave' }, 15_000);
    expect(fourth.started).toBe(true);
    expect(await store.gc.renew(third.run.id, 15_000)).toBe(false);
    expect(await store.gc.run(third.run.id)).toMatchObject({ status: 'failed', error: expect.stringContaining('interrupted') });
    expect((await store.gc.runs(10)).map((r) => r.id)).toEqual([fourth.run.id, third.run.id, first.run.id]);
    expect((await store.gc.runs(10, third.run.id)).map((r) => r.id)).toEqual([first.run.id]);
    expect(await store.gc.run('nope')).toBeNull();
    expect(await store.gc.totals()).toMatchObject({ runs: { succeeded: 1, failed: 1 }, blobsFreed: 1, bytesFreed: 100 });
    // Records are kept 90 days.
    clock += 91 * 24 * HOUR;
    await store.gc.finish(fourth.run.id, 'succeeded', { ...progress, phase: 'done' }, null);
    expect((await store.gc.runs(10)).map((r) => r.id)).toEqual([fourth.run.id]);
  });
});
