// How long the first process waits before it starts a dead worker again (src/app/cluster.ts).
// Found by running the Kubernetes example: the database went away while a node's second worker
// started; the node must go on serving and retry, not give up.
import { describe, expect, it } from 'vitest';
import { restartDelay } from '../../src/app/cluster.js';

describe('restartDelay', () => {
  it('starts a worker that failed to start again, backing off up to 30 s', () => {
    expect(restartDelay(false, 0)).toBe(2_000);
    expect(restartDelay(false, 1)).toBe(4_000);
    expect(restartDelay(false, 10)).toBe(30_000);
  });

  it('replaces a worker that served and died soon', () => {
    expect(restartDelay(true, 0)).toBe(500);
  });
});
