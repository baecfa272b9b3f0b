// A scale-out node whose PostgreSQL and S3 connections pass through fault-injecting proxies:
// the dependency goes down, hangs or fails, and the node answers 503 naming it (within bounded
// time), turns unready, exposes nothing half-written, and recovers by itself.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultProxy } from '../support/fault-proxy.js';
import { mediaTypes, sha256 } from '../support/http-app.js';
import { makeImage, pullImage, pushBlob, pushImage, putManifest, bytes, type TestImage } from '../support/scaleout.js';
import { createDatabase, databaseUrl, postgresService, s3Service, scaleOutEnv, uniqueBucket, type TestDatabase } from '../support/services.js';
import { startStowage, type RunningStowage } from '../support/stowage.js';

let database: TestDatabase;
let pgProxy: FaultProxy;
let s3Proxy: FaultProxy;
let node: RunningStowage;

beforeAll(async () => {
  const pg = postgresService();
  const s3 = new URL(s3Service().endpoint);
  database = await createDatabase('faults');
  pgProxy = new FaultProxy(pg.host, pg.port);
  s3Proxy = new FaultProxy(s3.hostname, Number(s3.port));
  const [pgPort, s3Port] = await Promise.all([pgProxy.start(), s3Proxy.start()]);
  node = await startStowage({
    env: scaleOutEnv(databaseUrl({ ...pg, port: pgPort }, database.name), uniqueBucket('faults'), {
      STOWAGE_WORKERS: '1',
      STOWAGE_LOG_LEVEL: 'error', // every injected fault would log a warning
      STOWAGE_S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
      STOWAGE_S3_REQUEST_TIMEOUT: '1s',
      STOWAGE_S3_MAX_ATTEMPTS: '2',
      STOWAGE_METADATA_STATEMENT_TIMEOUT: '2s',
      STOWAGE_METADATA_CONNECT_TIMEOUT: '2s',
    }),
  });
});

afterAll(async () => {
  await node?.stop();
  if (node) rmSync(node.dataDir, { recursive: true, force: true });
  await Promise.all([pgProxy?.close(), s3Proxy?.close()]);
  await database?.drop();
});

/** The response's OCI error code and dependency, and how long it took. */
async function timed(request: () => Promise<Response>): Promise<{ status: number; code?: string; dependency?: string; ms: number; text: string }> {
  const start = Date.now();
  const res = await request();
  const text = await res.text();
  let body: { errors?: { code: string; detail?: { dependency?: string } }[] } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // not JSON (a successful blob body)
  }
  return { status: res.status, code: body.errors?.[0]?.code, dependency: body.errors?.[0]?.detail?.dependency, ms: Date.now() - start, text: text.slice(0, 300) };
}

async function readiness(): Promise<{ status: number; reason?: string }> {
  const res = await fetch(`${node.url}/readyz`);
  const body = (await res.json()) as { reason?: string };
  return { status: res.status, reason: body.reason };
}

async function waitReady(): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await readiness()).status !== 200) {
    if (Date.now() > deadline) throw new Error(`not ready again: ${JSON.stringify(await readiness())}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const manifestGet = (tag: string) => () => fetch(`${node.url}/v2/faults/app/manifests/${tag}`, { headers: { accept: mediaTypes.ociManifest } });

describe('dependency failures on a scale-out node', () => {
  it('object store refusing connections: 503 naming storage, reads from the database go on, recovers', async () => {
    const before = makeImage('s3-down-before', [randomBytes(2000)]);
    await pushImage([node.url], node.url, 'faults/app', before, 'before');

    s3Proxy.setMode('refuse');
    // A right digest: the node verifies a small blob before it writes it (a wrong one is a 400
    // without touching the object store).
    const content = randomBytes(1000);
    const upload = await timed(() =>
      fetch(`${node.url}/v2/faults/app/blobs/uploads/?digest=${sha256(content)}`, { method: 'POST', body: bytes(content) }),
    );
    expect(upload).toMatchObject({ status: 503, code: 'UNAVAILABLE', dependency: 'storage' });
    expect(upload.ms).toBeLessThan(10_000);
    // Manifests and blob HEADs are answered from PostgreSQL, without the object store.
    expect((await timed(manifestGet('before'))).status).toBe(200);
    const layer = before.blobs[1]!.descriptor.digest;
    expect((await fetch(`${node.url}/v2/faults/app/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
    expect(await timed(() => fetch(`${node.url}/v2/faults/app/blobs/${layer}`))).toMatchObject({ status: 503, dependency: 'storage' });
    expect(await readiness()).toMatchObject({ status: 503, reason: expect.stringContaining('blob storage') });

    // A push whose blobs could not be stored cannot leave a manifest behind.
    const during = makeImage('s3-down-during', [randomBytes(3000)]);
    for (const blob of during.blobs) {
      const res = await fetch(`${node.url}/v2/faults/app/blobs/uploads/?digest=${blob.descriptor.digest}`, { method: 'POST', body: bytes(blob.content) });
      expect(res.status).toBe(503);
    }
    const refused = await putManifest(node.url, 'faults/app', 'during', during.manifest);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('MANIFEST_BLOB_UNKNOWN');

    s3Proxy.setMode('pass');
    await waitReady();
    await pushImage([node.url], node.url, 'faults/app', during, 'during');
    expect((await pullImage(node.url, 'faults/app', 'during')).digest).toBe(during.digest);
  });

  it('object store failing with 503s or hanging: bounded retries and timeouts, then 503', async () => {
    const image = makeImage('s3-slow', [randomBytes(2000)]);
    await pushImage([node.url], node.url, 'faults/app', image, 'slow');
    const layer = image.blobs[1]!.descriptor.digest;
    const getLayer = () => fetch(`${node.url}/v2/faults/app/blobs/${layer}`);

    s3Proxy.setMode('http-503');
    const failing = await timed(getLayer);
    expect(failing).toMatchObject({ status: 503, code: 'UNAVAILABLE', dependency: 'storage' });
    expect(failing.ms).toBeLessThan(10_000);

    s3Proxy.setMode('hang');
    const hanging = await timed(getLayer);
    expect(hanging).toMatchObject({ status: 503, dependency: 'storage' });
    expect(hanging.ms).toBeLessThan(15_000); // 2 attempts of a 1 s silence, plus backoff
    expect((await readiness()).status).toBe(503);

    s3Proxy.setMode('pass');
    await waitReady();
    expect((await timed(getLayer)).status).toBe(200);
  });

  it('database cut during a push loop: clean 503s, every acknowledged push intact, recovers by itself', async () => {
    const images: TestImage[] = Array.from({ length: 9 }, (_, i) => makeImage(`db-loop-${i}`, [randomBytes(1500 + i)]));
    const acknowledged: number[] = [];
    const failed: number[] = [];
    for (const [i, image] of images.entries()) {
      if (i === 3) pgProxy.setMode('refuse');
      if (i === 6) pgProxy.setMode('pass');
      try {
        await pushImage([node.url], node.url, 'faults/loop', image, `t${i}`);
        acknowledged.push(i);
      } catch (error) {
        // Only clean, retryable failures: 503 naming the database.
        expect((error as Error).message).toMatch(/answered 503/);
        failed.push(i);
      }
      if (i === 4) {
        expect(await timed(manifestGet('before'))).toMatchObject({ status: 503, code: 'UNAVAILABLE', dependency: 'metadata' });
        expect(await readiness()).toMatchObject({ status: 503, reason: expect.stringContaining('metadata database') });
      }
    }
    expect(failed).toEqual(expect.arrayContaining([3, 4, 5]));
    await waitReady();
    for (const i of acknowledged) expect((await pullImage(node.url, 'faults/loop', `t${i}`)).digest).toBe(images[i]!.digest);
    // What failed is simply pushed again.
    for (const i of failed) {
      await pushImage([node.url], node.url, 'faults/loop', images[i]!, `t${i}`);
      expect((await pullImage(node.url, 'faults/loop', `t${i}`)).digest).toBe(images[i]!.digest);
    }
  });

  it('database hanging: requests fail with 503 within the configured timeouts', async () => {
    await pushImage([node.url], node.url, 'faults/app', makeImage('db-hang', [randomBytes(1000)]), 'hang');
    pgProxy.setMode('hang');
    const hanging = await timed(manifestGet('hang'));
    expect(hanging).toMatchObject({ status: 503, dependency: 'metadata' });
    expect(hanging.ms).toBeLessThan(15_000);
    pgProxy.setMode('pass');
    await waitReady();
    expect((await timed(manifestGet('hang'))).status).toBe(200);
    expect(await pushBlob(node.url, 'faults/app', randomBytes(100))).toMatch(/^sha256:/);
  });
});
