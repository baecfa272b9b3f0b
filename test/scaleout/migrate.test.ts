// `stowage migrate`: a running single-node installation (SQLite + filesystem) copied to
// PostgreSQL + Ceph RGW, then served by a scale-out node: every image pullable with matching
// digests, users log in with their passwords, tag history is there. The target is described by a
// YAML file (`--to-config`; the node on the target reads the same file with `--config`), and once
// by the environment instead. A migration killed in the middle is run again and completes; a
// third run finds nothing left to copy.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaTypes, sha256 } from '../support/http-app.js';
import { bytes, makeImage, type TestImage } from '../support/scaleout.js';
import { createDatabase, s3Service, scaleOutEnv, uniqueBucket, type TestDatabase } from '../support/services.js';
import { startStowage, type RunningStowage } from '../support/stowage.js';

const root = resolve(import.meta.dirname, '../..');
const MiB = 1024 * 1024;
const ADMIN = { username: 'admin', password: 'migrate-admin-password-1' };
const ALICE = { username: 'alice', password: 'alice-password-123' };
const AUTH = { STOWAGE_AUTH: 'token', STOWAGE_AUTH_BASIC: 'true', STOWAGE_ADMIN_PASSWORD: ADMIN.password };
const basic = (c: typeof ADMIN) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

let source: RunningStowage;
let target: RunningStowage | undefined;
let database: TestDatabase;
let targetEnv: Record<string, string>;
/** The same target as targetEnv, as a config file (credentials included). */
let targetConfig: string;
let configDir: string;
const images: { repository: string; tag: string; image: TestImage }[] = [];

async function call(node: RunningStowage, method: string, path: string, as: typeof ADMIN, body?: Buffer | object, contentType?: string): Promise<Response> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? bytes(body) : JSON.stringify(body);
  return fetch(`${node.url}${path}`, {
    method,
    headers: { authorization: basic(as), ...(payload !== undefined ? { 'content-type': contentType ?? (Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json') } : {}) },
    body: payload,
  });
}

async function push(node: RunningStowage, repository: string, tag: string, image: TestImage): Promise<void> {
  for (const blob of image.blobs) {
    const res = await call(node, 'POST', `/v2/${repository}/blobs/uploads/?digest=${blob.descriptor.digest}`, ALICE, blob.content);
    expect(res.status, await res.clone().text()).toBe(201);
  }
  const res = await call(node, 'PUT', `/v2/${repository}/manifests/${tag}`, ALICE, image.manifest, mediaTypes.ociManifest);
  expect(res.status, await res.clone().text()).toBe(201);
}

/** The environment without any STOWAGE_* or AWS_* setting: a target from a file comes from the file alone. */
function bareEnv(): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('STOWAGE_') && !key.startsWith('AWS_')));
}

/**
 * Runs `stowage migrate` from the source's data directory to the target: described by
 * `--to-config` (the default), or by the environment (`env`).
 */
function runMigrate(options: { killAfter?: RegExp; env?: Record<string, string> } = {}): Promise<{ code: number | null; signal: string | null; output: string }> {
  return new Promise((ok) => {
    const target = options.env ? [] : ['--to-config', targetConfig];
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'migrate', '--from-data-dir', source.dataDir, ...target, '--concurrency', '2'], {
      cwd: root,
      env: options.env ? { ...process.env, ...options.env } : bareEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const take = (chunk: Buffer) => {
      output += chunk.toString();
      if (options.killAfter?.test(output)) child.kill('SIGKILL');
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('exit', (code, signal) => ok({ code, signal, output }));
  });
}

beforeAll(async () => {
  source = await startStowage({ env: { ...AUTH, STOWAGE_WORKERS: '1' } });
  expect((await call(source, 'POST', '/api/v1/users', ADMIN, { name: ALICE.username, password: ALICE.password })).status).toBe(201);
  expect((await call(source, 'POST', '/api/v1/projects', ADMIN, { name: 'team', public: false })).status).toBe(201);
  expect((await call(source, 'PUT', '/api/v1/projects/team/members/alice', ADMIN, { role: 'developer' })).status).toBe(204);
  // Enough bytes that a migration can be caught in the middle: 12 layers of 3 MiB.
  for (let i = 0; i < 6; i++) {
    const image = makeImage(`migrate-${i}`, [randomBytes(3 * MiB), randomBytes(3 * MiB), randomBytes(1000 + i)]);
    images.push({ repository: `team/app${i % 3}`, tag: `v${i}`, image });
    await push(source, `team/app${i % 3}`, `v${i}`, image);
  }
  // A blob over one part (8 MiB): copied through a staged multipart upload, digest verified.
  const large = makeImage('migrate-large', [randomBytes(9 * MiB + 5)]);
  images.push({ repository: 'team/large', tag: 'v1', image: large });
  await push(source, 'team/large', 'v1', large);
  // A tag that moved: its history must come along.
  const moved = makeImage('migrate-moved', [randomBytes(500)]);
  await push(source, 'team/app0', 'v0', moved);
  images[0] = { repository: 'team/app0', tag: 'v0', image: moved };
  images.push({ repository: 'team/app0', tag: 'old', image: images[0]!.image });
  await push(source, 'team/app0', 'old', moved);

  database = await createDatabase('migrate');
  const bucket = uniqueBucket('migrate');
  targetEnv = scaleOutEnv(database.url, bucket, { STOWAGE_WORKERS: '1', ...AUTH });
  const s3 = s3Service();
  configDir = mkdtempSync(join(tmpdir(), 'stowage-migrate-config-'));
  targetConfig = join(configDir, 'target.yaml');
  writeFileSync(
    targetConfig,
    [
      'metadata:',
      '  driver: postgres',
      `  url: "${database.url}"`,
      'storage:',
      '  driver: s3',
      '  s3:',
      `    endpoint: "${s3.endpoint}"`,
      `    region: "${s3.region}"`,
      `    bucket: "${bucket}"`,
      '    forcePathStyle: true',
      `    accessKeyId: "${s3.accessKeyId}"`,
      `    secretAccessKey: "${s3.secretAccessKey}"`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}, 300_000);

afterAll(async () => {
  await target?.stop();
  await source?.stop();
  if (source) rmSync(source.dataDir, { recursive: true, force: true });
  if (target) rmSync(target.dataDir, { recursive: true, force: true });
  await database?.drop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

describe('stowage migrate: single node to PostgreSQL + S3', () => {
  it('refuses a target that is not the scale-out backends, saying what to set', async () => {
    const refused = await runMigrate({ env: { STOWAGE_STORAGE_DRIVER: 'filesystem' } });
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('the target must be the scale-out backends; set metadata.driver: postgres (STOWAGE_METADATA_DRIVER=postgres)');
    expect(refused.output).toContain('storage.driver: s3 (STOWAGE_STORAGE_DRIVER=s3)');
  });

  it('from --to-config: is killed in the middle of the blobs, run again to completion while the source keeps serving, and a third run (from the environment) copies nothing', async () => {
    const killed = await runMigrate({ killAfter: /blobs: [1-9]\d*%/ });
    expect(killed.signal, killed.output).toBe('SIGKILL');

    // The source keeps working meanwhile (a push after the interrupted run is copied too).
    const late = makeImage('migrate-late', [randomBytes(2000)]);
    await push(source, 'team/late', 'v1', late);
    images.push({ repository: 'team/late', tag: 'v1', image: late });

    const second = await runMigrate();
    expect(second.code, second.output).toBe(0);
    const resumed = /blobs: (\d+) copied and verified, (\d+) already there/.exec(second.output);
    expect(resumed, second.output).not.toBeNull();
    expect(Number(resumed![2]), `the second run skips what the first copied: ${second.output}`).toBeGreaterThan(0);
    expect(second.output).toMatch(/metadata: \d+ tables, \d+ rows copied/);

    // The environment names the same target as the file.
    const third = await runMigrate({ env: targetEnv });
    expect(third.code, third.output).toBe(0);
    expect(third.output).toMatch(/blobs: 0 copied and verified, \d+ already there/);
  });

  it('a scale-out node on the target (started with the same config file) serves every image with matching digests, and the users log in', async () => {
    target = await startStowage({ args: ['--config', targetConfig], env: { STOWAGE_WORKERS: '1', ...AUTH } });
    for (const { repository, tag, image } of images) {
      const manifest = await call(target, 'GET', `/v2/${repository}/manifests/${tag}`, ALICE);
      expect(manifest.status, `${repository}:${tag}`).toBe(200);
      const body = Buffer.from(await manifest.arrayBuffer());
      expect(sha256(body)).toBe(image.digest);
      for (const blob of image.blobs) {
        const res = await call(target, 'GET', `/v2/${repository}/blobs/${blob.descriptor.digest}`, ALICE);
        const content = Buffer.from(await res.arrayBuffer());
        expect(res.status).toBe(200);
        expect(sha256(content)).toBe(blob.descriptor.digest);
      }
    }
    // Logins: the token endpoint with the migrated passwords; a wrong one is refused.
    const token = await fetch(`${target.url}/auth/token?service=stowage&scope=repository:team/app1:pull,push`, { headers: { authorization: basic(ALICE) } });
    expect(token.status).toBe(200);
    expect(((await token.json()) as { token: string }).token).toMatch(/^ey/);
    const wrong = await fetch(`${target.url}/auth/token?service=stowage`, { headers: { authorization: basic({ ...ALICE, password: 'not-it-at-all' }) } });
    expect(wrong.status).toBe(401);
    expect((await call(target, 'GET', '/api/v1/users', ADMIN)).status).toBe(200);
    // The tag's history came along: two moves of team/app0:v0.
    const history = await call(target, 'GET', '/api/v1/repositories/team/app0/-/tags/v0/history', ALICE);
    expect(history.status, await history.clone().text()).toBe(200);
    expect(((await history.json()) as { items: unknown[] }).items.length).toBe(2);
    // New rows get fresh ids on the target (identity sequences moved past the copied ones).
    expect((await call(target, 'POST', '/api/v1/users', ADMIN, { name: 'bob', password: 'bob-password-123' })).status).toBe(201);
    await push(target, 'team/new', 'v1', makeImage('after', [randomBytes(100)]));
  });
});
