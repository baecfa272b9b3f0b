// A real client against the scale-out deployment: skopeo pushes through one node and pulls
// through others (three nodes on one PostgreSQL database and one S3 bucket).
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientEnv, ensureTools, sha256File, type ClientEnv } from '../support/clients.js';
import { buildFixtures, type Fixtures, type ImageIndex, type ImageManifest } from '../support/images.js';
import { startScaleOut, type ScaleOut } from '../support/scaleout.js';
import * as http from '../e2e/registry-http.js';

let cluster: ScaleOut;
let env: ClientEnv;
let fx: Fixtures;
let counter = 0;

beforeAll(async () => {
  await ensureTools('skopeo', 'umoci', 'unshare');
  cluster = await startScaleOut('skopeo', 3);
  env = await createClientEnv({ insecureRegistries: cluster.nodes.map((n) => n.host) });
  mkdirSync(join(env.dir, 'tmp'), { recursive: true });
  fx = await buildFixtures(env);
});

afterAll(async () => {
  await cluster?.stop();
  await env?.cleanup();
});

const hex = (digest: string) => digest.replace(/^sha256:/, '');
const tmp = (label: string) => join(env.dir, 'tmp', `${label}-${++counter}`);

/** skopeo copy to `dir:` and a check of every blob it wrote; resolves to the manifest digest. */
async function pullToDir(host: string, reference: string): Promise<{ digest: string; manifest: ImageManifest }> {
  const dir = tmp('pulled');
  try {
    await env.skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${reference}`, `dir:${dir}`]);
    const raw = readFileSync(join(dir, 'manifest.json'));
    const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
    for (const d of http.blobsOf(manifest)) expect(await sha256File(join(dir, hex(d.digest))), `blob ${d.digest} pulled from ${host}`).toBe(d.digest);
    return { digest: http.sha256(raw), manifest };
  } finally {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}

describe('skopeo against three scale-out nodes', () => {
  it('pushes a multi-layer image (with a 64 MiB layer) through A and pulls it through B and C', async () => {
    const [a, b, c] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const digestFile = tmp('digest');
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile, fx.multi.ref, `docker://${a.host}/so/multi:1.0`]);
    expect(readFileSync(digestFile, 'utf8').trim()).toBe(fx.multi.digest);

    for (const node of [b, c]) {
      const pulled = await pullToDir(node.host, 'so/multi:1.0');
      expect(pulled.digest).toBe(fx.multi.digest);
      expect(pulled.manifest.layers.map((l) => l.digest)).toEqual(fx.multi.manifest.layers.map((l) => l.digest));
    }
    // skopeo inspect through C returns the exact pushed bytes.
    const inspected = await env.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${c.host}/so/multi:1.0`]);
    expect(http.sha256(Buffer.from(inspected.stdout, 'utf8'))).toBe(fx.multi.digest);
  });

  it('copies a multi-platform index through B, reads it through A, deletes it through C', async () => {
    const [a, b, c] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    await env.skopeo(['copy', '--quiet', '--all', '--dest-tls-verify=false', fx.index.ref, `docker://${b.host}/so/index:multi`]);
    const index = await http.getManifest(a, 'so/index', 'multi');
    expect(index.status).toBe(200);
    expect(index.digest).toBe(fx.index.digest);
    const parsed = JSON.parse(index.body.toString('utf8')) as ImageIndex;
    for (const child of parsed.manifests) {
      expect((await http.headManifest(c, 'so/index', child.digest)).status).toBe(200);
    }
    await env.skopeo(['delete', '--tls-verify=false', `docker://${c.host}/so/index@${fx.index.digest}`]);
    for (const node of cluster.nodes) expect((await http.getManifest(node, 'so/index', 'multi')).status).toBe(404);
  });
});
