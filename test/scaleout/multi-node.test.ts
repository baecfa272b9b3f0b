// Three Stowage nodes sharing one PostgreSQL database and one S3 bucket (Ceph RGW), as behind a
// load balancer: any request may land on any node.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaTypes, ociIndex, ociManifest, descriptorOf, emptyConfig, emptyConfigDescriptor, sha256 } from '../support/http-app.js';
import {
  bytes,
  makeImage,
  objectStoreRequests,
  pullImage,
  pushBlob,
  pushImage,
  putManifest,
  startScaleOut,
  total,
  type ScaleOut,
} from '../support/scaleout.js';

const MiB = 1024 * 1024;
let cluster: ScaleOut;
let urls: string[];

beforeAll(async () => {
  cluster = await startScaleOut('multi-node', 3);
  urls = cluster.nodes.map((n) => n.url);
});

afterAll(async () => {
  await cluster?.stop();
});

async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}

describe('scale-out: three nodes on PostgreSQL and S3', () => {
  it('continues a chunked upload started on A with PATCHes on B and C and completes it on A, digest verified', async () => {
    const [a, b, c] = urls as [string, string, string];
    // Chunks of 9 MiB (a streamed multipart append), 1 MiB and 6 MiB: the commit copies the big
    // segments inside the object store and streams the small one.
    const chunks = [randomBytes(9 * MiB), randomBytes(MiB), randomBytes(6 * MiB + 17)];
    const blob = Buffer.concat(chunks);
    const digest = sha256(blob);

    const post = await fetch(`${a}/v2/scale/chunked/blobs/uploads/`, { method: 'POST' });
    expect(post.status).toBe(202);
    const location = post.headers.get('location')!;
    let offset = 0;
    for (const [i, chunk] of chunks.entries()) {
      const node = [b, c, b][i]!;
      const res = await fetch(`${node}${location}`, {
        method: 'PATCH',
        body: bytes(chunk),
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
      });
      expect(res.status, await res.clone().text()).toBe(202);
      offset += chunk.length;
      expect(res.headers.get('range')).toBe(`0-${offset - 1}`);
    }
    // Every node sees the session's progress.
    for (const node of urls) {
      const status = await fetch(`${node}${location}`);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe(`0-${blob.length - 1}`);
    }
    // A chunk that does not start at the acknowledged offset is refused, whichever node gets it.
    const outOfOrder = await fetch(`${c}${location}`, {
      method: 'PATCH',
      body: bytes(Buffer.from('x')),
      headers: { 'content-type': 'application/octet-stream', 'content-range': '5-5' },
    });
    expect(outOfOrder.status).toBe(416);

    // The wrong digest is refused (the node re-reads the stored bytes to check), and the session stays.
    const wrong = await fetch(`${c}${location}?digest=${sha256(Buffer.from('something else'))}`, { method: 'PUT' });
    expect(wrong.status).toBe(400);
    expect(await errorCode(wrong)).toBe('DIGEST_INVALID');
    for (const node of urls) expect((await fetch(`${node}/v2/scale/chunked/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);

    const done = await fetch(`${a}${location}?digest=${digest}`, { method: 'PUT' });
    expect(done.status, await done.clone().text()).toBe(201);
    expect(done.headers.get('docker-content-digest')).toBe(digest);

    for (const node of urls) {
      const res = await fetch(`${node}/v2/scale/chunked/blobs/${digest}`);
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(createHash('sha256').update(body).digest('hex')).toBe(digest.slice(7));
    }
    // A range through yet another node, across the boundary of the first two chunks.
    const range = await fetch(`${b}/v2/scale/chunked/blobs/${digest}`, { headers: { range: `bytes=${9 * MiB - 4}-${9 * MiB + 3}` } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(blob.subarray(9 * MiB - 4, 9 * MiB + 4))).toBe(true);
    // The session is gone everywhere.
    for (const node of urls) expect((await fetch(`${node}${location}`)).status).toBe(404);
  });

  it('lets the last writer of a tag win, and a delete through one node is seen by all at once', async () => {
    const [a, b, c] = urls as [string, string, string];
    const repo = 'scale/tags';
    const images = [0, 1, 2].map((i) => makeImage(`lww-${i}`, [randomBytes(2000 + i)]));
    for (const [i, image] of images.entries()) await pushImage(urls, urls[i]!, repo, image);
    // Sequential moves of one tag through different nodes: each read anywhere sees the latest.
    for (let round = 0; round < 6; round++) {
      const image = images[round % 3]!;
      const writer = urls[round % 3]!;
      expect((await putManifest(writer, repo, 'latest', image.manifest)).status).toBe(201);
      for (const reader of urls) {
        const res = await fetch(`${reader}/v2/${repo}/manifests/latest`, { method: 'HEAD', headers: { accept: mediaTypes.ociManifest } });
        expect(res.headers.get('docker-content-digest')).toBe(image.digest);
      }
    }
    // Deleted through C: gone on A and B immediately (no node keeps a cache that outlives it).
    const victim = images[1]!;
    expect((await pullImage(a, repo, victim.digest)).digest).toBe(victim.digest);
    expect((await pullImage(b, repo, victim.digest)).digest).toBe(victim.digest);
    expect((await fetch(`${c}/v2/${repo}/manifests/${victim.digest}`, { method: 'DELETE' })).status).toBe(202);
    for (const node of urls) {
      expect((await fetch(`${node}/v2/${repo}/manifests/${victim.digest}`, { headers: { accept: mediaTypes.ociManifest } })).status).toBe(404);
    }
  });

  it('ends consistent after concurrent manifest pushes, tag moves and deletes from all nodes', async () => {
    const repo = 'scale/race';
    const shared = randomBytes(3000);
    const images = Array.from({ length: 9 }, (_, i) => makeImage(`race-${i}`, [shared, randomBytes(1000 + i)]));
    // Blobs first, each through a different node.
    await Promise.all(images.map((image, i) => Promise.all(image.blobs.map((blob, j) => pushBlob(urls[(i + j) % 3]!, repo, blob.content)))));

    const tags = ['a', 'b', 'c', 'd'];
    const operations: Promise<number>[] = [];
    for (let i = 0; i < 60; i++) {
      const node = urls[i % 3]!;
      const image = images[(i * 7) % images.length]!;
      const tag = tags[i % tags.length]!;
      if (i % 10 === 9) {
        // Deletes of manifests (with the tags on them) race with the pushes.
        operations.push(fetch(`${node}/v2/${repo}/manifests/${image.digest}`, { method: 'DELETE' }).then((r) => r.status));
      } else if (i % 10 === 4) {
        operations.push(fetch(`${node}/v2/${repo}/manifests/${tag}`, { method: 'DELETE' }).then((r) => r.status));
      } else {
        operations.push(putManifest(node, repo, tag, image.manifest).then((r) => r.status));
      }
    }
    const statuses = await Promise.all(operations);
    // Every request got a clean answer: pushes 201, deletes 202 or 404 (already gone); no 5xx.
    for (const status of statuses) expect([201, 202, 404]).toContain(status);

    const listed = await Promise.all(urls.map(async (node) => ((await (await fetch(`${node}/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags));
    expect(listed[1]).toEqual(listed[0]);
    expect(listed[2]).toEqual(listed[0]);
    // Every tag names a complete manifest, pullable (with every blob) from every node, alike.
    for (const tag of listed[0]!) {
      const digests = await Promise.all(urls.map(async (node) => (await pullImage(node, repo, tag)).digest));
      expect(new Set(digests).size).toBe(1);
    }
    // A final push per tag through one node settles each tag, seen by every node.
    for (const [i, tag] of tags.entries()) {
      const image = images[i]!;
      expect((await putManifest(urls[i % 3]!, repo, tag, image.manifest)).status).toBe(201);
      for (const node of urls) expect((await pullImage(node, repo, tag)).digest).toBe(image.digest);
    }
  });

  it('serves the core API through any node: mounts, referrers, listings, in-use refusals', async () => {
    const [a, b, c] = urls as [string, string, string];
    const image = makeImage('core', [randomBytes(5000), randomBytes(7000)]);
    await pushImage([a], b, 'core/one', image, 'v1');
    // Cross-repository mount through another node: no bytes sent.
    const layer = image.blobs[1]!.descriptor.digest;
    const mount = await fetch(`${c}/v2/core/two/blobs/uploads/?mount=${layer}&from=core/one`, { method: 'POST' });
    expect(mount.status).toBe(201);
    expect((await fetch(`${a}/v2/core/two/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
    // A blob a manifest uses cannot be deleted from its repository.
    const inUse = await fetch(`${a}/v2/core/one/blobs/${layer}`, { method: 'DELETE' });
    expect(inUse.status).toBe(409);

    // An artifact whose subject is the image, pushed through C, listed as a referrer through A.
    await pushBlob(c, 'core/one', emptyConfig);
    const artifact = ociManifest({
      config: emptyConfigDescriptor,
      layers: [emptyConfigDescriptor],
      artifactType: 'application/vnd.example.sbom',
      subject: descriptorOf(mediaTypes.ociManifest, image.manifest),
    });
    expect((await putManifest(c, 'core/one', sha256(artifact), artifact)).status).toBe(201);
    const referrers = (await (await fetch(`${a}/v2/core/one/referrers/${image.digest}`)).json()) as { manifests: { digest: string; artifactType: string }[] };
    expect(referrers.manifests).toEqual([expect.objectContaining({ digest: sha256(artifact), artifactType: 'application/vnd.example.sbom' })]);

    // An index over the image, then paged tag and catalog listings through other nodes.
    const index = ociIndex({ manifests: [{ ...descriptorOf(mediaTypes.ociManifest, image.manifest), platform: { architecture: 'amd64', os: 'linux' } }] });
    expect((await putManifest(a, 'core/one', 'multi', index, mediaTypes.ociIndex)).status).toBe(201);
    const refused = await fetch(`${b}/v2/core/one/manifests/${image.digest}`, { method: 'DELETE' });
    expect(refused.status).toBe(409);
    const page = await fetch(`${c}/v2/core/one/tags/list?n=1`);
    expect(await page.json()).toEqual({ name: 'core/one', tags: ['multi'] });
    expect(page.headers.get('link')).toContain('last=multi');
    const catalog = (await (await fetch(`${b}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(expect.arrayContaining(['core/one', 'core/two']));
    expect([...catalog.repositories].sort()).toEqual(catalog.repositories);
  });

  it('answers manifest and blob HEAD/GET-by-tag from the database, with no object-store request', async () => {
    const [a, b] = urls as [string, string];
    const image = makeImage('no-s3', [randomBytes(1000), randomBytes(1000), randomBytes(1000)]);
    const before = await objectStoreRequests(a);
    await pushImage([a], a, 'scale/reads', image, 'v1');
    const pushed = await objectStoreRequests(a);
    // Recorded for the docs: object-store requests to push a 3-layer image with monolithic uploads.
    console.info(`S3 requests to push a small image (3 layers + config, monolithic uploads): ${total(pushed) - total(before)} ${JSON.stringify(diff(before, pushed))}`);

    const quiet = await objectStoreRequests(b);
    for (let i = 0; i < 5; i++) {
      expect((await fetch(`${b}/v2/scale/reads/manifests/v1`, { headers: { accept: mediaTypes.ociManifest } })).status).toBe(200);
      expect((await fetch(`${b}/v2/scale/reads/manifests/v1`, { method: 'HEAD', headers: { accept: mediaTypes.ociManifest } })).status).toBe(200);
      for (const blob of image.blobs) expect((await fetch(`${b}/v2/scale/reads/blobs/${blob.descriptor.digest}`, { method: 'HEAD' })).status).toBe(200);
      expect((await fetch(`${b}/v2/scale/reads/tags/list`)).status).toBe(200);
      expect((await fetch(`${b}/v2/_catalog`)).status).toBe(200);
    }
    expect(total(await objectStoreRequests(b))).toBe(total(quiet));
  });

  it('redirects blob GETs to a pre-signed object-store URL when configured', async () => {
    const redirecting = await cluster.startNode({ STOWAGE_S3_REDIRECT: 'true', STOWAGE_S3_REDIRECT_EXPIRY: '5m' });
    const content = randomBytes(100_000);
    const digest = await pushBlob(urls[0]!, 'scale/redirect', content);
    const res = await fetch(`${redirecting.url}/v2/scale/redirect/blobs/${digest}`, { redirect: 'manual' });
    expect(res.status).toBe(307);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    const location = res.headers.get('location')!;
    expect(location).toMatch(/X-Amz-Signature=/);
    expect(location.startsWith(cluster.env.STOWAGE_S3_ENDPOINT!)).toBe(true);
    // The bytes come from the object store; a Range header works there too.
    const direct = await fetch(location);
    expect(direct.status).toBe(200);
    expect(sha256(Buffer.from(await direct.arrayBuffer()))).toBe(digest);
    const ranged = await fetch(location, { headers: { range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(content.subarray(10, 20))).toBe(true);
    // A client that follows redirects gets the blob transparently; HEAD is still answered by the node.
    expect(sha256(Buffer.from(await (await fetch(`${redirecting.url}/v2/scale/redirect/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
    const head = await fetch(`${redirecting.url}/v2/scale/redirect/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    // Only for blobs the repository holds.
    expect((await fetch(`${redirecting.url}/v2/scale/other/blobs/${digest}`, { redirect: 'manual' })).status).toBe(404);
  });
});

function diff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(after)) if (n - (before[name] ?? 0) > 0) out[name] = n - (before[name] ?? 0);
  return out;
}
