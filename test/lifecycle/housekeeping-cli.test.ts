// `stowage quota`, `stowage usage` and `stowage retention`: on the local installation while the
// server runs (the server enforces a quota set by the CLI at once), and with --server.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStowage } from '../support/cli.js';
import { startStowage, type RunningStowage } from '../support/stowage.js';

let dataDir: string;
let server: RunningStowage;
const stowage = (args: string[], env: Record<string, string> = {}) => runStowage(dataDir, args, env);

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const remote = () => ({ STOWAGE_SERVER: server.url, STOWAGE_USERNAME: 'admin', STOWAGE_PASSWORD: 'unused-in-open-mode' });

async function pushBlob(repository: string, blob: Buffer): Promise<Response> {
  return fetch(`${server.url}/v2/${repository}/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', body: new Uint8Array(blob), headers: { 'content-type': 'application/octet-stream' } });
}

async function pushImage(tag: string, layer: Buffer): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
  for (const blob of [config, layer]) expect((await pushBlob('team/app', blob)).status).toBe(201);
  const d = (mediaType: string, b: Buffer) => ({ mediaType, digest: sha(b), size: b.length });
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: d('application/vnd.oci.image.config.v1+json', config), layers: [d('application/vnd.oci.image.layer.v1.tar', layer)] });
  const response = await fetch(`${server.url}/v2/team/app/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  expect(response.status).toBe(201);
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'stowage-housekeeping-cli-'));
  server = await startStowage({ dataDir, env: { STOWAGE_AUTH: 'none', STOWAGE_WORKERS: '1' } });
  expect(stowage(['project', 'create', 'team']).status).toBe(0);
  await pushImage('v1', Buffer.alloc(1000, 1));
  await pushImage('v2', Buffer.alloc(1000, 2));
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('stowage quota, usage and retention', () => {
  it('set and show a quota locally; the running server refuses a push beyond it', async () => {
    const set = stowage(['quota', 'set', 'team', '--bytes', '3KB', '--repositories', '5']);
    expect(set.status, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^team: \d+ bytes in 4 blobs \(quota 3000 bytes\), 1 repositories \(limit 5\)/);
    const refused = await pushBlob('team/app', Buffer.alloc(1000, 3));
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.message).toMatch(/^quota exceeded: used \d+ of 3000 bytes/);
    const shown = JSON.parse(stowage(['quota', 'show', 'team', '--json'], remote()).stdout);
    expect(shown.quota).toEqual({ bytes: 3000, repositories: 5 });
    const usage = stowage(['usage']);
    expect(usage.status, usage.stderr).toBe(0);
    expect(usage.stdout).toContain('team: ');
    expect(stowage(['quota', 'set', 'team', '--bytes', 'plenty']).status).toBe(2);
    expect(stowage(['quota', 'show', 'nope']).status).toBe(1);
  });

  it('set a policy from a file, dry-run and run it, locally and with --server', () => {
    const file = join(dataDir, 'policy.json');
    writeFileSync(file, JSON.stringify({ keepMostRecent: 1 }));
    const set = stowage(['retention', 'set', 'team', file]);
    expect(set.status, set.stderr).toBe(0);
    expect(stowage(['retention', 'show', 'team']).stdout).toContain('{"keepMostRecent":1}');
    const dry = stowage(['retention', 'run', '--dry-run', 'team'], remote());
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would remove team\/app@sha256:[0-9a-f]{64} \(v1\): tagged, and no keep rule matches/);
    expect(dry.stdout).toContain('dry run: 1 manifests to remove, 1 kept');
    const real = stowage(['retention', 'run', 'team', '--json']);
    expect(real.status, real.stderr).toBe(0);
    expect(JSON.parse(real.stdout).removed.map((d: { tags: string[] }) => d.tags)).toEqual([['v1']]);
    writeFileSync(file, '{"keepMostRecent": 0}');
    const invalid = stowage(['retention', 'set', 'team', file]);
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toContain('keepMostRecent');
  });
});
