import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';

// Kills the server with SIGKILL in the middle of uploads and manifest pushes, restarts it on the
// same data, and checks that nothing partial or dangling is visible.

const running: RunningStowage[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.kill()));
});

async function start(dataDir?: string): Promise<RunningStowage> {
  const server = await startStowage(dataDir ? { dataDir } : {});
  running.push(server);
  return server;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a request that sends `first` and then stalls, so the server can be killed mid-body. */
function stalledRequest(url: string, method: string, first: Buffer, headers: Record<string, string | number> = {}) {
  const req = request(url, { method, headers: { 'content-type': 'application/octet-stream', ...headers } });
  req.on('error', () => undefined); // the server dies under it
  req.write(first);
  return req;
}

async function blobDigestOf(server: RunningStowage, repo: string, digest: string): Promise<{ status: number; digest?: string }> {
  const res = await fetch(`${server.url}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) return { status: res.status };
  return { status: 200, digest: sha256(Buffer.from(await res.arrayBuffer())) };
}

describe('crash safety (SIGKILL)', () => {
  it('a monolithic upload killed mid-body leaves no blob, and the push succeeds after restart', async () => {
    const server = await start();
    const blob = randomBytes(8 * 1024 * 1024);
    const digest = sha256(blob);
    const req = stalledRequest(`${server.url}/v2/crash/mono/blobs/uploads/?digest=${digest}`, 'POST', blob.subarray(0, 4 * 1024 * 1024), { 'content-length': blob.length });
    await sleep(300);
    await server.kill();
    req.destroy();

    const again = await start(server.dataDir);
    expect((await fetch(`${again.url}/v2/crash/mono/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    const put = await fetch(`${again.url}/v2/crash/mono/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob });
    expect(put.status).toBe(201);
    expect(await blobDigestOf(again, 'crash/mono', digest)).toEqual({ status: 200, digest });
  });

  it('a chunked upload killed mid-chunk resumes at the last acknowledged offset after restart', async () => {
    const server = await start();
    const blob = randomBytes(6 * 1024 * 1024);
    const digest = sha256(blob);
    const chunk = 2 * 1024 * 1024;
    const post = await fetch(`${server.url}/v2/crash/chunked/blobs/uploads/`, { method: 'POST' });
    expect(post.status).toBe(202);
    const location = post.headers.get('location')!;
    const first = await fetch(`${server.url}${location}`, {
      method: 'PATCH',
      body: blob.subarray(0, chunk),
      headers: { 'content-range': `0-${chunk - 1}`, 'content-type': 'application/octet-stream' },
    });
    expect(first.status).toBe(202);
    const next = first.headers.get('location')!;
    // The second chunk dies half-way.
    const req = stalledRequest(`${server.url}${next}`, 'PATCH', blob.subarray(chunk, chunk + chunk / 2), {
      'content-range': `${chunk}-${2 * chunk - 1}`,
      'content-length': chunk,
    });
    await sleep(300);
    await server.kill();
    req.destroy();

    const again = await start(server.dataDir);
    const status = await fetch(`${again.url}${next}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${chunk - 1}`);
    const rest = await fetch(`${again.url}${next}`, {
      method: 'PATCH',
      body: blob.subarray(chunk),
      headers: { 'content-range': `${chunk}-${blob.length - 1}`, 'content-type': 'application/octet-stream' },
    });
    expect(rest.status).toBe(202);
    const done = await fetch(`${again.url}${rest.headers.get('location')!}${rest.headers.get('location')!.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    expect(await blobDigestOf(again, 'crash/chunked', digest)).toEqual({ status: 200, digest });
  });

  it('kills during a stream of image pushes leave every tag pointing at a complete image', async () => {
    let server = await start();
    const repo = 'crash/images';
    let acknowledged = 0;
    for (const round of [1, 2, 3]) {
      let pushed = 0;
      let stop = false;
      const pushing = (async () => {
        for (let i = 0; i < 500 && !stop; i++) {
          try {
            await pushImage(server.url, repo, `r${round}-${i}`);
            pushed++;
          } catch {
            return; // the server died
          }
        }
      })();
      // Kill at a random moment once pushes are flowing, so the kill lands mid-push.
      for (let waited = 0; pushed === 0 && waited < 20_000; waited += 20) await sleep(20);
      await sleep(Math.floor(Math.random() * 150));
      stop = true;
      await server.kill();
      await pushing;
      acknowledged += pushed;
      server = await start(server.dataDir);
      const res = await fetch(`${server.url}/v2/${repo}/tags/list`);
      expect(res.status).toBe(200);
      const tags = (await res.json()) as { tags: string[] };
      // Every push acknowledged before the kill is there.
      expect(tags.tags.filter((t) => t.startsWith(`r${round}-`)).length).toBeGreaterThanOrEqual(pushed);
      for (const tag of tags.tags) {
        const res = await fetch(`${server.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
        expect(res.status).toBe(200);
        const body = Buffer.from(await res.arrayBuffer());
        expect(sha256(body)).toBe(res.headers.get('docker-content-digest'));
        const manifest = JSON.parse(body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
        for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
          expect(await blobDigestOf(server, repo, d)).toEqual({ status: 200, digest: d });
        }
      }
    }
    // The kills landed while pushes were going on, not before the first one finished.
    expect(acknowledged).toBeGreaterThan(0);
  });
});

/** Pushes a small image (two random layers + config) and tags it. */
async function pushImage(url: string, repo: string, tag: string): Promise<void> {
  const layers = [randomBytes(64 * 1024), randomBytes(200 * 1024)];
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
  for (const blob of [...layers, config]) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
    if (res.status !== 201) throw new Error(`blob push: ${res.status}`);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
  });
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (res.status !== 201) throw new Error(`manifest push: ${res.status}`);
}
