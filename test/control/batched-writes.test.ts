// The background batching behind the audit log, pull statistics and pull events.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BatchedWrites } from '../../src/control/batched-writes.js';

function batcher(options: { flushMs?: number; batchSize?: number; failFirst?: boolean } = {}) {
  const waiting: number[] = [];
  const written: number[][] = [];
  const failures: [string, number][] = [];
  let fail = options.failFirst ?? false;
  const writes = new BatchedWrites<number>({
    flushMs: options.flushMs ?? 3_600_000,
    batchSize: options.batchSize ?? 1000,
    take: () => waiting.splice(0),
    write: async (batch) => {
      await sleep(5);
      if (fail) {
        fail = false;
        throw new Error('database down');
      }
      written.push(batch);
    },
    failed: (error, items) => failures.push([(error as Error).message, items]),
  });
  const record = (n: number) => {
    waiting.push(n);
    writes.recorded(waiting.length);
  };
  return { writes, record, written, failures };
}

describe('batched writes', () => {
  it('write a batch when batchSize items wait, in order, one write at a time', async () => {
    const b = batcher({ batchSize: 3 });
    for (let i = 1; i <= 7; i++) b.record(i);
    await b.writes.flush();
    expect(b.written).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('write what waits flushMs after the first item, and nothing when nothing waits', async () => {
    const b = batcher({ flushMs: 20 });
    b.record(1);
    b.record(2);
    expect(b.written).toEqual([]);
    for (let i = 0; i < 200 && b.written.length === 0; i++) await sleep(10);
    expect(b.written).toEqual([[1, 2]]);
    await b.writes.flush();
    expect(b.written).toEqual([[1, 2]]);
  });

  it('report a failed write instead of throwing, and go on with the next batch', async () => {
    const b = batcher({ failFirst: true });
    b.record(1);
    await expect(b.writes.flush()).resolves.toBeUndefined();
    b.record(2);
    await b.writes.flush();
    expect(b.failures).toEqual([['database down', 1]]);
    expect(b.written).toEqual([[2]]);
  });
});
