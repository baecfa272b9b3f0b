import { randomBytes } from 'node:crypto';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COLLECT_EVERY_BYTES, YoungGarbage, uploadGarbage } from '../../src/registry/young-garbage.js';
import { createTestApp, location, sha256, withQuery, type TestApp } from '../support/http-app.js';

describe('young-generation collections paced by streamed body bytes', () => {
  it('collects once for every 8 MiB that passed, whatever the chunk sizes', () => {
    let collections = 0;
    const garbage = new YoungGarbage(() => collections++);
    const chunk = 64 * 1024 + 17; // not a divisor of 8 MiB
    let sent = 0;
    for (; sent + chunk <= 40 * 1024 * 1024; sent += chunk) garbage.passed(chunk);
    // One collection each time another 8 MiB has accumulated; the remainder waits for more.
    expect(collections).toBeGreaterThanOrEqual(4);
    expect(collections).toBeLessThanOrEqual(Math.floor(sent / COLLECT_EVERY_BYTES));
  });

  it('does not collect for small bodies', () => {
    let collections = 0;
    const garbage = new YoungGarbage(() => collections++);
    for (let i = 0; i < 100; i++) garbage.passed(8 * 1024);
    expect(collections).toBe(0);
  });

  it("uses V8's own collector, exposed after start", () => {
    uploadGarbage.passed(COLLECT_EVERY_BYTES); // the first collection sets it up
    expect(vm.runInNewContext('typeof gc')).toBe('function');
  });
});

describe('streamed uploads feed the count', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('every byte of a chunked upload passes through it', async () => {
    const content = randomBytes(3 * 1024 * 1024); // over the whole-blob limit: streamed
    const counted = vi.spyOn(uploadGarbage, 'passed');
    try {
      const started = await t.post('/v2/young/blobs/uploads/');
      const chunk = await t.patch(location(started), content, { 'content-type': 'application/octet-stream', 'content-range': `0-${content.length - 1}` });
      expect(chunk.statusCode).toBe(202);
      const done = await t.put(withQuery(location(chunk), { digest: sha256(content) }));
      expect(done.statusCode).toBe(201);
      expect(counted.mock.calls.reduce((sum, [bytes]) => sum + bytes, 0)).toBeGreaterThanOrEqual(content.length);
    } finally {
      counted.mockRestore();
    }
  });
});
