import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';

const root = resolve(import.meta.dirname, '../..');
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('stowage serve', () => {
  let server: RunningStowage;
  beforeAll(async () => {
    server = await startStowage({ env: { STOWAGE_LOG_LEVEL: 'info' } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('answers /healthz and /readyz', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('exports Prometheus metrics for requests, bytes, uploads and storage', async () => {
    const blob = randomBytes(1000);
    await fetch(`${server.url}/v2/ops/metrics/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
    await fetch(`${server.url}/v2/ops/metrics/blobs/uploads/`, { method: 'POST' });
    // One scrape: whichever process answers, it reports the node's requests (test/ops/workers.test.ts).
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/stowage_http_requests_total\{method="POST",route="upload",status="201"\} \d+/);
    expect(text).toMatch(/stowage_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="upload"\}/);
    expect(text).toMatch(/stowage_http_received_bytes_total [1-9]/);
    expect(text).toMatch(/stowage_uploads_in_progress [1-9]/);
    expect(text).toMatch(/stowage_storage_used_bytes [1-9]\d{2,}/);
  });

  it('documents every option in --help', () => {
    const help = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--help'], { cwd: root, encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const option of ['--config', '--listen', '--data-dir', '--log-level', '--log-requests', '--upload-expiry', '--workers', 'STOWAGE_DATA_DIR']) {
      expect(help.stdout).toContain(option);
    }
  });

  it('stops with a message naming the key when a setting is invalid', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--listen', 'nowhere'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, STOWAGE_DATA_DIR: '/tmp/stowage-never-created' },
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('listen: expected HOST:PORT');
  });
});

describe('graceful shutdown', () => {
  it('finishes an upload in flight on SIGTERM, then exits 0', async () => {
    const server = await startStowage({ args: ['--shutdown-timeout', '20s'] });
    const blob = randomBytes(4 * 1024 * 1024);
    const digest = sha256(blob);
    const response = new Promise<number>((ok, fail) => {
      const req = request(`${server.url}/v2/ops/shutdown/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        headers: { 'content-length': blob.length, 'content-type': 'application/octet-stream' },
      });
      req.on('response', (res) => {
        res.resume();
        ok(res.statusCode ?? 0);
      });
      req.on('error', fail);
      req.write(blob.subarray(0, blob.length / 2));
      // The rest arrives after SIGTERM.
      setTimeout(() => req.end(blob.subarray(blob.length / 2)), 700);
    });
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((ok) => server.process.once('exit', (code) => ok(code)));
    server.process.kill('SIGTERM');
    expect(await response).toBe(201);
    expect(await exited).toBe(0);
  });
});
