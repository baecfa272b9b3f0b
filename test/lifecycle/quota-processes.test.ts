// Two server processes on one SQLite database (as two workers): concurrent pushes that together
// exceed a project's quota, sent to both, succeed exactly as far as they fit; pulls counted in
// both processes add up in the database.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStowage } from '../support/cli.js';
import { startStowage, type RunningStowage } from '../support/stowage.js';

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
let a: RunningStowage;
let b: RunningStowage;

beforeAll(async () => {
  a = await startStowage({ args: ['--workers', '1'] });
  b = await startStowage({ dataDir: a.dataDir, args: ['--workers', '1'] });
  expect(runStowage(a.dataDir, ['project', 'create', 'team']).status).toBe(0);
  expect(runStowage(a.dataDir, ['quota', 'set', 'team', '--bytes', '3500']).status).toBe(0);
}, 90_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

describe('across processes', () => {
  it('admit exactly the concurrent pushes that fit the quota', async () => {
    const blobs = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, i + 1));
    const statuses = await Promise.all(
      blobs.map((blob, i) =>
        fetch(`${(i % 2 === 0 ? a : b).url}/v2/team/r${i % 3}/blobs/uploads/?digest=${sha(blob)}`, {
          method: 'POST',
          body: new Uint8Array(blob),
          headers: { 'content-type': 'application/octet-stream' },
        }).then(async (r) => (await r.arrayBuffer(), r.status)),
      ),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s === 403)).toHaveLength(7);
    const usage = await (await fetch(`${b.url}/api/v1/projects/team/usage`)).json();
    expect(usage.usage).toMatchObject({ bytes: 3000, blobs: 3 });
  }, 60_000);

  it('add up pulls counted in both processes', async () => {
    expect(runStowage(a.dataDir, ['quota', 'set', 'team']).status).toBe(0); // no limits any more
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const post = await fetch(`${a.url}/v2/team/app/blobs/uploads/?digest=${sha(config)}`, { method: 'POST', body: new Uint8Array(config), headers: { 'content-type': 'application/octet-stream' } });
    expect(post.status).toBe(201);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [] });
    expect((await fetch(`${a.url}/v2/team/app/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    for (let i = 0; i < 12; i++) expect((await fetch(`${(i < 5 ? a : b).url}/v2/team/app/manifests/v1`, { headers: accept })).status).toBe(200);
    // b writes its counts within its flush interval (2 s); a writes its own when asked.
    const deadline = Date.now() + 20_000;
    let tag: { pulls: number; manifestPulls: number } | undefined;
    while (Date.now() < deadline) {
      tag = (await (await fetch(`${a.url}/api/v1/repositories/team/app/-/tags`)).json()).items[0];
      if (tag?.pulls === 12) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(tag).toMatchObject({ pulls: 12, manifestPulls: 12 });
  }, 60_000);
});
