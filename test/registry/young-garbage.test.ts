import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { COLLECT_EVERY_BYTES, YoungGarbage, uploadGarbage } from '../../src/registry/young-garbage.js';

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
