// `stowage tag history|rollback` and `stowage diff`: on the local installation next to a running
// server (which sees the rollback at once), and against the server's API with --server.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';
import { runStowage } from '../support/cli.js';

let dataDir: string;
let server: RunningStowage;
const digests: string[] = [];

const stowage = (args: string[], env: Record<string, string> = {}) => runStowage(dataDir, args, env);

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function push(tag: string, env: string[], layers: string[]): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: env }, rootfs: { type: 'layers', diff_ids: [] } }));
  const blobs = [config, ...layers.map((l) => Buffer.from(l))];
  for (const blob of blobs) {
    const response = await fetch(`${server.url}/v2/team/app/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    expect(response.status).toBe(201);
  }
  const descriptor = (mediaType: string, b: Buffer) => ({ mediaType, digest: sha(b), size: b.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: descriptor('application/vnd.oci.image.config.v1+json', config),
      layers: blobs.slice(1).map((b) => descriptor('application/vnd.oci.image.layer.v1.tar', b)),
    }),
  );
  const response = await fetch(`${server.url}/v2/team/app/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  expect(response.status).toBe(201);
  return sha(manifest);
}

async function current(): Promise<string | null> {
  const response = await fetch(`${server.url}/v2/team/app/manifests/rel`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return response.headers.get('docker-content-digest');
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'stowage-tagcli-'));
  server = await startStowage({ dataDir, env: { STOWAGE_AUTH: 'none', STOWAGE_WORKERS: '1' } });
  digests.push(await push('rel', ['A=1'], ['base', 'one']));
  digests.push(await push('rel', ['A=2', 'B=3'], ['base', 'two']));
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('stowage tag and diff commands', () => {
  it('show the history and roll back on the local installation while the server runs', () => {
    const history = stowage(['tag', 'history', 'team/app:rel']);
    expect(history.status, history.stderr).toBe(0);
    expect(history.stdout).toContain(`team/app:rel -> ${digests[1]}`);
    expect(history.stdout.split('\n').filter((l) => l.includes('sha256:'))).toHaveLength(3);

    const rolled = stowage(['tag', 'rollback', 'team/app:rel', '--json']);
    expect(rolled.status, rolled.stderr).toBe(0);
    expect(JSON.parse(rolled.stdout)).toMatchObject({ previousDigest: digests[1], digest: digests[0], moved: true });
    expect(rolled.stderr).toContain(`${digests[1]} -> ${digests[0]}`);
  });

  it('work against the API with --server, and the server serves the restored digest', async () => {
    expect(await current()).toBe(digests[0]);
    const env = { STOWAGE_SERVER: server.url, STOWAGE_USERNAME: 'admin', STOWAGE_PASSWORD: 'unused-in-open-mode' };
    const rolled = stowage(['tag', 'rollback', 'team/app:rel', '--to', digests[1]!], env);
    expect(rolled.status, rolled.stderr).toBe(0);
    expect(await current()).toBe(digests[1]);
    const history = JSON.parse(stowage(['tag', 'history', 'team/app:rel', '--json'], env).stdout);
    expect(history.items).toHaveLength(4);
  });

  it('diff layers, env and size', () => {
    const diff = stowage(['diff', 'team/app', digests[0]!, 'rel']);
    expect(diff.status, diff.stderr).toBe(0);
    expect(diff.stdout).toContain('layers: 1 shared, 1 removed, 1 added');
    expect(diff.stdout).toContain('env: + B=3');
    expect(diff.stdout).toContain('env: ~ A: 1 -> 2');
  });

  it('report errors with exit codes', () => {
    const bad = stowage(['tag', 'rollback', 'team/app']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('<repository>:<tag>');
    const steps = stowage(['tag', 'rollback', 'team/app:rel', '--steps', '50']);
    expect(steps.status).toBe(1);
    expect(steps.stderr).toContain('moved only');
    expect(stowage(['tag', 'history', 'team/app:none']).status).toBe(1);
  });
});
