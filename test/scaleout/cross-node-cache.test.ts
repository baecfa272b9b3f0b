// Per-node caches never answer for content deleted, moved or added through another node: node B
// keeps being read (tag list, catalog, manifest GET by tag and digest and HEAD by tag, blob HEAD
// and GET) while node A deletes or moves a tag, adds a tag or a repository, and every read on B
// that starts after A's change has answered sees the change. Node B's caches are warm beforehand
// (tag lists and the catalog are kept per process under listing leases; hot lookups are cached
// for up to SHARED_READ_CACHE_MS).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaTypes } from '../support/http-app.js';
import { makeImage, pushBlob, pushImage, putManifest, startScaleOut, type ScaleOut } from '../support/scaleout.js';

let cluster: ScaleOut;
let a: string;
let b: string;

beforeAll(async () => {
  cluster = await startScaleOut('cross-node-cache', 2);
  [a, b] = cluster.nodes.map((n) => n.url) as [string, string];
});

afterAll(async () => {
  await cluster?.stop();
});

interface Read {
  startedAfterChange: boolean;
  status: number;
  tags?: string[];
  repositories?: string[];
  digest?: string | null;
}

/**
 * Reads `read` on node B in a loop while `change` runs on node A, and until 20 more reads have
 * started after it answered (bounded in count, not in time). Resolves to every read, each
 * marked with whether it started after the change's answer.
 */
async function readWhileChanging(read: () => Promise<Omit<Read, 'startedAfterChange'>>, change: () => Promise<number>): Promise<{ reads: Read[]; changeStatus: number }> {
  let changed = false;
  let after = 0;
  const reads: Read[] = [];
  const reader = (async () => {
    while (after < 20) {
      const startedAfterChange = changed;
      if (startedAfterChange) after++;
      reads.push({ startedAfterChange, ...(await read()) });
    }
  })();
  // Let a few reads pass before deleting, so that B's caches are in use.
  while (reads.length < 3) await new Promise((ok) => setTimeout(ok, 5));
  const changeStatus = await change();
  changed = true;
  await reader;
  return { reads, changeStatus };
}

/** A read of `repository`'s tag list through node B. */
async function tagListOnB(repository: string): Promise<Omit<Read, 'startedAfterChange'>> {
  const res = await fetch(`${b}/v2/${repository}/tags/list`);
  return { status: res.status, tags: ((await res.json()) as { tags: string[] }).tags };
}

describe('per-node caches and deletes through another node', () => {
  it('a tag deleted through A is gone from the tag list and by name on B at once', async () => {
    const repo = 'cache/tags';
    const image = makeImage('tags', [randomBytes(1000)]);
    for (const tag of ['v1', 'v2', 'v3']) await pushImage([a], a, repo, image, tag);
    const { reads, changeStatus } = await readWhileChanging(
      () => tagListOnB(repo),
      async () => (await fetch(`${a}/v2/${repo}/manifests/v2`, { method: 'DELETE' })).status,
    );
    expect(changeStatus).toBe(202);
    expect(reads.some((r) => !r.startedAfterChange && r.tags?.includes('v2'))).toBe(true);
    for (const r of reads.filter((r) => r.startedAfterChange)) expect(r.tags).toEqual(['v1', 'v3']);
    expect((await fetch(`${b}/v2/${repo}/manifests/v2`, { headers: { accept: mediaTypes.ociManifest } })).status).toBe(404);
  });

  it('a manifest deleted through A is not served by tag or digest (GET, HEAD) on B, at once', async () => {
    const repo = 'cache/manifests';
    const image = makeImage('manifests', [randomBytes(1500)]);
    await pushImage([a], a, repo, image, 'latest');
    const { reads, changeStatus } = await readWhileChanging(
      async () => {
        const answers = await Promise.all([
          ...['latest', image.digest].map((ref) => fetch(`${b}/v2/${repo}/manifests/${ref}`, { headers: { accept: mediaTypes.ociManifest } })),
          fetch(`${b}/v2/${repo}/manifests/latest`, { method: 'HEAD', headers: { accept: mediaTypes.ociManifest } }),
        ]);
        await Promise.all(answers.map((res) => res.arrayBuffer()));
        // All or none: report the worse one.
        return { status: answers.some((res) => res.status === 200) ? 200 : answers[0]!.status };
      },
      async () => (await fetch(`${a}/v2/${repo}/manifests/${image.digest}`, { method: 'DELETE' })).status,
    );
    expect(changeStatus).toBe(202);
    expect(reads.some((r) => !r.startedAfterChange && r.status === 200)).toBe(true);
    for (const r of reads.filter((r) => r.startedAfterChange)) expect(r.status).toBe(404);
  });

  it('a tag moved through A names its new manifest on B (GET and HEAD), at once', async () => {
    const repo = 'cache/moves';
    const first = makeImage('first', [randomBytes(1200)]);
    const second = makeImage('second', [randomBytes(1300)]);
    await pushImage([a], a, repo, first, 'latest');
    await pushImage([a], a, repo, second, 'second');
    const { reads, changeStatus } = await readWhileChanging(
      async () => {
        const [get, head] = await Promise.all(
          (['GET', 'HEAD'] as const).map((method) => fetch(`${b}/v2/${repo}/manifests/latest`, { method, headers: { accept: mediaTypes.ociManifest } })),
        );
        await get!.arrayBuffer();
        const digests = [get!, head!].map((res) => res.headers.get('docker-content-digest'));
        // Both must name the same manifest: report a disagreement as neither.
        return { status: get!.status, digest: digests[0] === digests[1] ? digests[0] : 'mixed' };
      },
      async () => (await putManifest(a, repo, 'latest', second.manifest)).status,
    );
    expect(changeStatus).toBe(201);
    expect(reads.some((r) => !r.startedAfterChange && r.digest === first.digest)).toBe(true);
    for (const r of reads.filter((r) => r.startedAfterChange)) expect(r.digest).toBe(second.digest);
  });

  it('a blob deleted through A answers 404 to HEAD and GET on B, at once', async () => {
    const repo = 'cache/blobs';
    const digest = await pushBlob(a, repo, randomBytes(4000));
    const { reads, changeStatus } = await readWhileChanging(
      async () => {
        const head = await fetch(`${b}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
        const get = await fetch(`${b}/v2/${repo}/blobs/${digest}`);
        await get.arrayBuffer();
        return { status: head.status === 200 || get.status === 200 ? 200 : head.status };
      },
      async () => (await fetch(`${a}/v2/${repo}/blobs/${digest}`, { method: 'DELETE' })).status,
    );
    expect(changeStatus).toBe(202);
    expect(reads.some((r) => !r.startedAfterChange && r.status === 200)).toBe(true);
    for (const r of reads.filter((r) => r.startedAfterChange)) expect(r.status).toBe(404);
  });

  it('a tag pushed through A is in the tag list on B at once', async () => {
    const repo = 'cache/new-tags';
    const image = makeImage('new-tags', [randomBytes(1100)]);
    await pushImage([a], a, repo, image, 'v1');
    const { reads, changeStatus } = await readWhileChanging(
      () => tagListOnB(repo),
      async () => (await putManifest(a, repo, 'v2', image.manifest)).status,
    );
    expect(changeStatus).toBe(201);
    expect(reads.some((r) => !r.startedAfterChange && r.tags?.length === 1)).toBe(true);
    for (const r of reads.filter((r) => r.startedAfterChange)) expect(r.tags).toEqual(['v1', 'v2']);
  });

  it("a repository's first blob pushed through A puts it in the catalog on B at once", async () => {
    const repo = 'cache/zz-new-repository';
    const { reads, changeStatus } = await readWhileChanging(
      async () => {
        const res = await fetch(`${b}/v2/_catalog`);
        return { status: res.status, repositories: ((await res.json()) as { repositories: string[] }).repositories };
      },
      async () => {
        await pushBlob(a, repo, randomBytes(3000));
        return 201;
      },
    );
    expect(changeStatus).toBe(201);
    expect(reads.some((r) => !r.startedAfterChange && !r.repositories?.includes(repo))).toBe(true);
    for (const r of reads.filter((r) => r.startedAfterChange)) expect(r.repositories).toContain(repo);
  });
});
