// Pull events off the pull's path: `all` buffers and writes in batches, `sample` keeps a share,
// `aggregate` writes one event per repository and digest per window with the count, `off` nothing;
// none of them writes on the pull itself.
import { describe, expect, it } from 'vitest';
import type { Actor } from '../../src/auth/principal.js';
import type { EventQueries, NewEvent } from '../../src/metadata/events-store.js';
import { EventRecorder, type PullEventMode } from '../../src/events/recorder.js';

const actor: Actor = { principal: { kind: 'user', id: '1', name: 'alice', admin: false }, address: '10.0.0.9' };
const manifest = (n: number) => ({ digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 100 + n });

function recorder(pulls: PullEventMode, extra: { random?: () => number; pullSampleRate?: number } = {}) {
  const written: NewEvent[][] = [];
  const store = { append: async (events: NewEvent[]) => void written.push(events) } as unknown as EventQueries;
  return { written, events: new EventRecorder(store, { node: 'n1', pulls, pullWindowMs: 60_000, flushMs: 60_000, ...extra }) };
}

describe('pull events', () => {
  it('all: every pull, written in one batch later, with who, where and which node', async () => {
    const { written, events } = recorder('all');
    for (let i = 0; i < 3; i++) events.pulled(actor, 'team/app', manifest(1), 'v1');
    expect(written).toEqual([]);
    await events.flush();
    expect(written).toHaveLength(1);
    expect(written[0]!.map((e) => [e.type, e.repository, e.tag, e.digest, e.actor, e.address, e.node, e.project])).toEqual(
      Array(3).fill(['artifact.pulled', 'team/app', 'v1', manifest(1).digest, 'alice', '10.0.0.9', 'n1', 'team']),
    );
  });

  it('aggregate: one event per repository and digest per window, with the count', async () => {
    const { written, events } = recorder('aggregate');
    for (let i = 0; i < 5; i++) events.pulled(actor, 'team/app', manifest(1), 'v1');
    events.pulled(actor, 'team/app', manifest(2), null);
    events.pulled(actor, 'team/other', manifest(1), null);
    await events.flush();
    expect(written).toEqual([]); // the window is still open
    await events.flush(true);
    expect(written.flat().map((e) => [e.repository, e.digest, e.detail])).toEqual([
      ['team/app', manifest(1).digest, { count: 5, windowMs: 60_000 }],
      ['team/app', manifest(2).digest, { count: 1, windowMs: 60_000 }],
      ['team/other', manifest(1).digest, { count: 1, windowMs: 60_000 }],
    ]);
  });

  it('sample: the configured share, marked with the rate; off: nothing', async () => {
    let n = 0;
    const sampled = recorder('sample', { pullSampleRate: 0.25, random: () => (n++ % 4) / 4 });
    for (let i = 0; i < 8; i++) sampled.events.pulled(actor, 'team/app', manifest(1), 'v1');
    await sampled.events.flush(true);
    expect(sampled.written.flat()).toHaveLength(2);
    expect(sampled.written.flat()[0]!.detail).toEqual({ sampleRate: 0.25 });

    const off = recorder('off');
    off.events.pulled(actor, 'team/app', manifest(1), 'v1');
    await off.events.flush(true);
    expect(off.written).toEqual([]);
  });

  it('emit: a control-plane event at once, by its actor; a store failure is logged, not thrown', async () => {
    const { written, events } = recorder('off');
    await events.emit({ type: 'gc.finished', detail: { blobs: 3 } });
    expect(written[0]![0]).toMatchObject({ type: 'gc.finished', actor: null, actorKind: 'system', node: 'n1', detail: { blobs: 3 } });
    const errors: unknown[] = [];
    const failing = new EventRecorder({ append: async () => Promise.reject(new Error('db down')) } as unknown as EventQueries, { node: 'n1' });
    failing.logTo({ error: (...args: unknown[]) => void errors.push(args) });
    await failing.emit({ type: 'project.created', actor, project: 'p' });
    expect(errors).toHaveLength(1);
  });
});
