// Three nodes on one PostgreSQL database: every node runs a dispatcher; each event reaches the
// webhook exactly once under normal operation, and a repository's events arrive in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImage, pushImage, startScaleOut, type ScaleOut } from '../support/scaleout.js';
import { Receiver } from './receiver.js';

let cluster: ScaleOut;
const receiver = new Receiver();

beforeAll(async () => {
  await receiver.start();
  cluster = await startScaleOut('events', 3, {
    STOWAGE_WEBHOOKS_ALLOW_PRIVATE: 'true',
    STOWAGE_WEBHOOKS_POLL_INTERVAL: '50ms',
    STOWAGE_WEBHOOKS_CONCURRENCY: '8',
  });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await receiver.stop();
});

describe('events on three nodes', () => {
  it('delivers each event exactly once, in order per repository', async () => {
    const urls = cluster.nodes.map((n) => n.url);
    const created = await fetch(`${urls[0]}/api/v1/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${receiver.url}/all`, events: ['artifact.pushed', 'tag.moved'] }),
    });
    expect(created.status).toBe(201);
    const hook = (await created.json()) as { id: string };

    // 4 repositories, 6 tag pushes each, through all three nodes, the repositories concurrently.
    const repositories = ['ev/a', 'ev/b', 'ev/c', 'ev/d'];
    const tags = ['1', '2', '3', '4', '5', '6'];
    await Promise.all(
      repositories.map(async (repository, r) => {
        for (const [i, tag] of tags.entries()) {
          const node = urls[(r + i) % 3]!;
          await pushImage([node], node, repository, makeImage(`${repository}-${tag}`, [Buffer.from(`${repository} layer ${tag}`)]), tag);
        }
      }),
    );
    const expected = repositories.length * tags.length * 2;
    await receiver.waitFor((all) => all.length >= expected, `${expected} deliveries`, 60_000);
    // Time for a duplicate to show up, should one node send what another sent.
    await new Promise((r) => setTimeout(r, 1500));
    const ids = receiver.received.map((x) => x.json.id as string);
    expect(ids).toHaveLength(expected);
    expect(new Set(ids).size).toBe(expected);
    for (const repository of repositories) {
      const moves = receiver.received.filter((x) => x.json.repository === repository && x.json.type === 'tag.moved').map((x) => x.json.tag);
      expect(moves, repository).toEqual(tags);
    }
    // Pushes on all three nodes: the events name the node that handled each.
    expect(new Set(receiver.received.map((x) => x.json.source.node)).size).toBe(3);

    const log = (await (await fetch(`${urls[1]}/api/v1/webhooks/${hook.id}/deliveries?page_size=500`)).json()) as { items: { state: string; attempts: number }[] };
    expect(log.items).toHaveLength(expected);
    expect(log.items.every((d) => d.state === 'delivered' && d.attempts === 1)).toBe(true);
  }, 180_000);
});
