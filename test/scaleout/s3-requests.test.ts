// How many requests Stowage sends to the object store, counted by an HTTP proxy of our own in
// front of Ceph RGW (Stowage's S3 endpoint is the proxy): pushing a small image (3 layers, a
// config, a manifest) must cost at most 6, and the reads that the metadata answers none at all.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientEnv, ensureTools, type ClientEnv } from '../support/clients.js';
import { CountingProxy } from '../support/counting-proxy.js';
import { mediaTypes, sha256 } from '../support/http-app.js';
import { bytes, makeImage, pullImage, pushImage, putManifest, startScaleOut, type ScaleOut, type TestImage } from '../support/scaleout.js';
import { s3Service } from '../support/services.js';

const MAX_REQUESTS_PER_IMAGE = 6;
let proxy: CountingProxy;
let cluster: ScaleOut;
let url: string;

beforeAll(async () => {
  proxy = new CountingProxy(new URL(s3Service().endpoint));
  const endpoint = await proxy.start();
  cluster = await startScaleOut('s3-requests', 2, { STOWAGE_S3_ENDPOINT: endpoint });
  url = cluster.nodes[0]!.url;
  // Each node runs the upload expiry once right after it listens; its last request lists the
  // bucket's multipart uploads. Count only once every node has done so.
  const deadline = Date.now() + 60_000;
  while (proxy.requests.filter((r) => /[?&]uploads(=|&|$)/.test(r.path)).length < cluster.nodes.length) {
    if (Date.now() > deadline) throw new Error(`the nodes' start-up upload expiry did not run: ${proxy.since(0).join(', ')}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
});

afterAll(async () => {
  await cluster?.stop();
  await proxy?.close();
});

const smallImage = (label: string): TestImage =>
  makeImage(label, [gzipSync(randomBytes(2000)), gzipSync(randomBytes(30_000)), gzipSync(randomBytes(300_000))]);

/** Runs `work` and resolves to the object store requests it caused (as "METHOD path" lines). */
async function counted(work: () => Promise<unknown>): Promise<string[]> {
  const mark = proxy.count;
  await work();
  return proxy.since(mark);
}

/** POST, then PUT with the whole body (the spec's "POST then PUT" monolithic upload). */
async function postThenPut(node: string, repository: string, content: Buffer): Promise<void> {
  const post = await fetch(`${node}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  expect(post.status).toBe(202);
  const put = await fetch(`${node}${post.headers.get('location')}${post.headers.get('location')!.includes('?') ? '&' : '?'}digest=${sha256(content)}`, {
    method: 'PUT',
    body: bytes(content),
    headers: { 'content-type': 'application/octet-stream' },
  });
  expect(put.status, await put.clone().text()).toBe(201);
}

/** POST on one node, one streamed PATCH (no Content-Range) on another, PUT without body on the first. */
async function streamedPatch(nodes: string[], repository: string, content: Buffer): Promise<void> {
  const [a, b] = nodes as [string, string];
  const post = await fetch(`${a}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  expect(post.status).toBe(202);
  const patch = await fetch(`${b}${post.headers.get('location')}`, { method: 'PATCH', body: bytes(content), headers: { 'content-type': 'application/octet-stream' } });
  expect(patch.status, await patch.clone().text()).toBe(202);
  const location = patch.headers.get('location')!;
  const put = await fetch(`${a}${location}${location.includes('?') ? '&' : '?'}digest=${sha256(content)}`, { method: 'PUT' });
  expect(put.status, await put.clone().text()).toBe(201);
}

describe('object store requests, counted by a proxy in front of Ceph RGW', () => {
  it(`pushes a small image with at most ${MAX_REQUESTS_PER_IMAGE} requests, whichever way its blobs are uploaded`, async () => {
    const monolithic = smallImage('monolithic');
    const viaPut = smallImage('post-put');
    const viaPatch = smallImage('post-patch-put');
    const nodes = cluster.nodes.map((n) => n.url);

    const costs = {
      'POST ?digest=': await counted(() => pushImage([url], url, 'count/mono', monolithic, 'v1')),
      'POST + PUT': await counted(async () => {
        for (const blob of viaPut.blobs) await postThenPut(url, 'count/put', blob.content);
        expect((await putManifest(url, 'count/put', 'v1', viaPut.manifest)).status).toBe(201);
      }),
      'POST + PATCH (other node) + PUT': await counted(async () => {
        for (const blob of viaPatch.blobs) await streamedPatch(nodes, 'count/patch', blob.content);
        expect((await putManifest(nodes[1]!, 'count/patch', 'v1', viaPatch.manifest)).status).toBe(201);
      }),
    };
    console.info(`S3 requests per small image: ${JSON.stringify(Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, v.length])))}`);
    for (const [how, requests] of Object.entries(costs)) {
      expect(requests.length, `${how}: ${requests.join(', ')}`).toBeLessThanOrEqual(MAX_REQUESTS_PER_IMAGE);
      // One write per blob, nothing else: no staging, no copy, no clean-up, no HEAD.
      expect(requests.every((r) => r.startsWith('PUT ')), `${how}: ${requests.join(', ')}`).toBe(true);
    }
    for (const [repository, image] of [['count/mono', monolithic], ['count/put', viaPut], ['count/patch', viaPatch]] as const) {
      for (const node of nodes) expect((await pullImage(node, repository, 'v1')).digest).toBe(image.digest);
    }
  });

  it('answers manifest GET and HEAD, blob HEAD, tag lists and the catalog without any request', async () => {
    const image = smallImage('reads');
    await pushImage([url], url, 'count/reads', image, 'latest');
    const requests = await counted(async () => {
      for (const node of cluster.nodes.map((n) => n.url)) {
        for (const reference of ['latest', image.digest]) {
          const get = await fetch(`${node}/v2/count/reads/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
          expect(get.status).toBe(200);
          await get.arrayBuffer();
          expect((await fetch(`${node}/v2/count/reads/manifests/${reference}`, { method: 'HEAD', headers: { accept: mediaTypes.ociManifest } })).status).toBe(200);
        }
        for (const blob of image.blobs) {
          expect((await fetch(`${node}/v2/count/reads/blobs/${blob.descriptor.digest}`, { method: 'HEAD' })).status).toBe(200);
        }
        const tags = await fetch(`${node}/v2/count/reads/tags/list`);
        expect(((await tags.json()) as { tags: string[] }).tags).toEqual(['latest']);
        const catalog = await fetch(`${node}/v2/_catalog?n=100`);
        expect(((await catalog.json()) as { repositories: string[] }).repositories).toContain('count/reads');
      }
    });
    expect(requests, requests.join(', ')).toEqual([]);
  });
});

describe('uploads stored whole keep the semantics of uploads', () => {
  const MiB = 1024 * 1024;
  const blobUrl = (node: string, repository: string, digest: string) => `${node}/v2/${repository}/blobs/${digest}`;
  const withDigest = (location: string, digest: string) => `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`;

  async function pulled(node: string, repository: string, digest: string): Promise<Buffer> {
    const res = await fetch(blobUrl(node, repository, digest));
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  }

  it('a streamed PATCH on A, a chunk with Content-Range on B and the PUT on A: the whole blob is staged again, digest verified', async () => {
    const [a, b] = cluster.nodes.map((n) => n.url) as [string, string];
    const first = randomBytes(100_000);
    const second = randomBytes(50_000);
    const content = Buffer.concat([first, second]);
    const post = await fetch(`${a}/v2/whole/mixed/blobs/uploads/`, { method: 'POST' });
    const patch = await fetch(`${a}${post.headers.get('location')}`, { method: 'PATCH', body: bytes(first) });
    expect(patch.status).toBe(202);
    const chunk = await fetch(`${b}${patch.headers.get('location')}`, {
      method: 'PATCH',
      body: bytes(second),
      headers: { 'content-range': `${first.length}-${content.length - 1}` },
    });
    expect(chunk.status, await chunk.clone().text()).toBe(202);
    expect(chunk.headers.get('range')).toBe(`0-${content.length - 1}`);
    const put = await fetch(withDigest(`${a}${chunk.headers.get('location')}`, sha256(content)), { method: 'PUT' });
    expect(put.status, await put.clone().text()).toBe(201);
    expect((await pulled(b, 'whole/mixed', sha256(content))).equals(content)).toBe(true);
  });

  it('a PUT with the wrong digest answers DIGEST_INVALID and keeps the bytes: the PUT with the right one succeeds', async () => {
    const content = randomBytes(5000);
    const post = await fetch(`${url}/v2/whole/retry/blobs/uploads/`, { method: 'POST' });
    const location = post.headers.get('location')!;
    const wrong = await fetch(withDigest(`${url}${location}`, sha256(Buffer.from('other'))), { method: 'PUT', body: bytes(content) });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DIGEST_INVALID');
    expect((await fetch(blobUrl(url, 'whole/retry', sha256(content)), { method: 'HEAD' })).status).toBe(404);
    const right = await fetch(withDigest(`${cluster.nodes[1]!.url}${location}`, sha256(content)), { method: 'PUT' });
    expect(right.status, await right.clone().text()).toBe(201);
    expect((await pulled(url, 'whole/retry', sha256(content))).equals(content)).toBe(true);
  });

  it('an empty blob (POST, then PUT without a body on another node)', async () => {
    const empty = Buffer.alloc(0);
    const post = await fetch(`${url}/v2/whole/empty/blobs/uploads/`, { method: 'POST' });
    const put = await fetch(withDigest(`${cluster.nodes[1]!.url}${post.headers.get('location')}`, sha256(empty)), { method: 'PUT' });
    expect(put.status, await put.clone().text()).toBe(201);
    expect((await pulled(url, 'whole/empty', sha256(empty))).length).toBe(0);
  });

  it('a streamed PATCH larger than one part goes the staged way (multipart), on any node', async () => {
    const [a, b] = cluster.nodes.map((n) => n.url) as [string, string];
    const content = randomBytes(9 * MiB + 3);
    const post = await fetch(`${a}/v2/whole/large/blobs/uploads/`, { method: 'POST' });
    const patch = await fetch(`${b}${post.headers.get('location')}`, { method: 'PATCH', body: bytes(content) });
    expect(patch.status, await patch.clone().text()).toBe(202);
    const put = await fetch(withDigest(`${a}${patch.headers.get('location')}`, sha256(content)), { method: 'PUT' });
    expect(put.status, await put.clone().text()).toBe(201);
    expect((await pulled(b, 'whole/large', sha256(content))).equals(content)).toBe(true);
  });

  it('a cancelled session whose bytes were stored whole leaves nothing pullable', async () => {
    const content = randomBytes(1234);
    const post = await fetch(`${url}/v2/whole/cancel/blobs/uploads/`, { method: 'POST' });
    const patch = await fetch(`${url}${post.headers.get('location')}`, { method: 'PATCH', body: bytes(content) });
    expect(patch.status).toBe(202);
    expect((await fetch(`${url}${patch.headers.get('location')}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(blobUrl(url, 'whole/cancel', sha256(content)), { method: 'HEAD' })).status).toBe(404);
    const put = await fetch(withDigest(`${url}${patch.headers.get('location')}`, sha256(content)), { method: 'PUT' });
    expect(put.status).toBe(404);
  });
});

describe('object store requests of a real client', () => {
  let env: ClientEnv;
  let layout: string;
  const image = smallImage('skopeo');

  beforeAll(async () => {
    await ensureTools('skopeo');
    env = await createClientEnv({ insecureRegistries: cluster.nodes.map((n) => n.host) });
    layout = writeOciLayout(join(env.dir, 'small-layout'), image);
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  it(`skopeo pushes a small image with at most ${MAX_REQUESTS_PER_IMAGE} requests`, async () => {
    const host = cluster.nodes[0]!.host;
    const requests = await counted(() => env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${host}/count/skopeo:v1`]));
    console.info(`S3 requests for skopeo's push of a small image: ${requests.length}`);
    expect(requests.length, requests.join(', ')).toBeLessThanOrEqual(MAX_REQUESTS_PER_IMAGE);
    expect((await pullImage(cluster.nodes[1]!.url, 'count/skopeo', 'v1')).digest).toBe(image.digest);
  });
});

/** Writes `image` as an OCI image layout with the tag `latest`; resolves to its directory. */
function writeOciLayout(dir: string, image: TestImage): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const content of [image.manifest, ...image.blobs.map((b) => b.content)]) {
    writeFileSync(join(dir, 'blobs', 'sha256', sha256(content).slice('sha256:'.length)), content);
  }
  const manifest = { mediaType: mediaTypes.ociManifest, digest: image.digest, size: image.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } };
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [manifest] }));
  return dir;
}
