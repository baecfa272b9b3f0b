import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';

// Two server processes on one data directory stand for two workers (or nodes): an upload
// session started on one continues on the other, and two writers never interleave their bytes.

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('upload sessions across processes', () => {
  let a: RunningStowage;
  let b: RunningStowage;
  beforeAll(async () => {
    a = await startStowage({ args: ['--workers', '1'] });
    b = await startStowage({ dataDir: a.dataDir, args: ['--workers', '1'] });
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('continues on another process, refuses a concurrent writer, and verifies the digest', async () => {
    const blob = randomBytes(3 * 1024 * 1024);
    const part = 1024 * 1024;
    const post = await fetch(`${a.url}/v2/multi/proc/blobs/uploads/`, { method: 'POST' });
    expect(post.status).toBe(202);
    const location = post.headers.get('location')!;

    // A's PATCH stalls half-way through its chunk...
    const stalled = request(`${a.url}${location}`, {
      method: 'PATCH',
      headers: { 'content-range': `0-${part - 1}`, 'content-length': part, 'content-type': 'application/octet-stream' },
    });
    const stalledStatus = new Promise<number>((ok, fail) => {
      stalled.on('response', (res) => {
        res.resume();
        ok(res.statusCode ?? 0);
      });
      stalled.on('error', fail);
    });
    stalled.write(blob.subarray(0, part / 2));
    await new Promise((r) => setTimeout(r, 300));

    // ...so B may not write to the same session meanwhile.
    const concurrent = await fetch(`${b.url}${location}`, {
      method: 'PATCH',
      body: blob.subarray(0, part),
      headers: { 'content-range': `0-${part - 1}`, 'content-type': 'application/octet-stream' },
    });
    expect(concurrent.status).toBe(409);
    expect(((await concurrent.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('BLOB_UPLOAD_INVALID');

    stalled.end(blob.subarray(part / 2, part));
    expect(await stalledStatus).toBe(202);

    // B continues where A stopped and completes; it never saw the first bytes, so it re-reads them.
    const status = await fetch(`${b.url}${location}`);
    expect(status.headers.get('range')).toBe(`0-${part - 1}`);
    const rest = await fetch(`${b.url}${location}`, {
      method: 'PATCH',
      body: blob.subarray(part),
      headers: { 'content-range': `${part}-${blob.length - 1}`, 'content-type': 'application/octet-stream' },
    });
    expect(rest.status).toBe(202);
    const wrong = await fetch(`${b.url}${location}?digest=${sha256(Buffer.from('other'))}`, { method: 'PUT' });
    expect(wrong.status).toBe(400);
    const done = await fetch(`${a.url}${location}?digest=${sha256(blob)}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    const pulled = Buffer.from(await (await fetch(`${b.url}/v2/multi/proc/blobs/${sha256(blob)}`)).arrayBuffer());
    expect(sha256(pulled)).toBe(sha256(blob));
  });
});
