// What a node's primary does when a worker exits (src/app/cluster.ts). Found by running the
// Kubernetes example: the database went away while a node's second worker started, and the
// node stopped its first worker too, which was serving.
import { describe, expect, it } from 'vitest';
import { afterWorkerExit } from '../../src/app/cluster.js';

describe('afterWorkerExit', () => {
  it('stops the node when a worker fails to start and none serves', () => {
    expect(afterWorkerExit(false, 0, 0)).toEqual({ action: 'stop' });
  });

  it('starts a worker again, backing off, when it failed to start while others serve', () => {
    expect(afterWorkerExit(false, 1, 0)).toEqual({ action: 'restart', delayMs: 2_000 });
    expect(afterWorkerExit(false, 1, 1)).toEqual({ action: 'restart', delayMs: 4_000 });
    expect(afterWorkerExit(false, 3, 10)).toEqual({ action: 'restart', delayMs: 30_000 });
  });

  it('replaces a worker that served and died', () => {
    expect(afterWorkerExit(true, 0, 0)).toEqual({ action: 'restart', delayMs: 500 });
    expect(afterWorkerExit(true, 2, 0)).toEqual({ action: 'restart', delayMs: 500 });
  });
});
