// What a retention run reads, and the scheduled-run claim, on SQLite and PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetadataStore, NewManifest } from '../../src/metadata/metadata-store.js';
import { metadataBackends, type MetadataBackend } from '../support/metadata-backends.js';

const backends = metadataBackends('retention');

const layer = { digest: `sha256:${'1'.repeat(64)}`, size: 10 };

function manifest(n: number, extra: Partial<NewManifest> = {}): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, n }));
  return { digest: `sha256:${n.toString().padStart(64, '0')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: content.length, content, artifactType: null, subject: null, annotations: null, blobs: [layer.digest], children: [], ...extra };
}

describe.each(backends)('retention queries on %s', (_name, open) => {
  let backend: MetadataBackend;
  let store: MetadataStore;
  beforeAll(async () => {
    backend = await open();
    store = backend.stores[0]!;
    await store.control.projects.create({ name: 'team', public: false, createdBy: null });
  }, 60_000);
  afterAll(async () => backend?.cleanup());

  it('store policies and hand each scheduled slot to exactly one caller', async () => {
    expect(await store.retention.get('team')).toBeNull();
    expect(await store.retention.set('nope', { keepMostRecent: 1 }, null)).toBe(false);
    expect(await store.retention.set('team', { keepMostRecent: 1 }, '0 3 * * *')).toBe(true);
    const stored = await store.retention.get('team');
    expect(stored).toMatchObject({ project: 'team', rules: { keepMostRecent: 1 }, schedule: '0 3 * * *' });
    expect((await store.retention.list()).map((p) => p.project)).toEqual(['team']);
    const slot = new Date(stored!.lastRunAt!.getTime() + 3_600_000);
    const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => backend.stores[i % backend.stores.length]!.retention.claimRun('team', slot)));
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await store.retention.claimRun('team', new Date(slot.getTime() - 1))).toBe(false);
    expect((await store.retention.get('team'))!.lastRunAt).toEqual(slot);
  });

  it('list manifests with their tags, index membership, subject and last pull; and history digests since a time', async () => {
    await store.blobs.link('team/app', layer);
    await store.blobs.link('team/empty-now', layer);
    await store.blobs.link('other/app', layer);
    const child = manifest(1);
    await store.manifests.put('team/app', child);
    await store.manifests.put('team/app', manifest(2, { mediaType: 'application/vnd.oci.image.index.v1+json', blobs: [], children: [child.digest] }), 'multi');
    await store.manifests.put('team/app', manifest(3, { subject: child.digest }));
    await store.manifests.put('team/app', manifest(4), 'a');
    await store.manifests.put('team/app', manifest(4), 'b');
    const since = new Date();
    await store.manifests.put('team/app', manifest(5), 'a'); // a moves from 4 to 5
    await store.pulls.add([{ repository: 'team/app', digest: manifest(4).digest, tag: null, count: 1, lastAt: 1234 }]);

    expect(await store.retention.repositories('team')).toEqual(['team/app']);
    const listed = await store.retention.manifests('team/app');
    const byN = Object.fromEntries(listed.map((m) => [Number(m.digest.slice(7)), m]));
    expect(listed).toHaveLength(5);
    expect(byN[1]).toMatchObject({ tags: [], inIndex: true, subject: null, pulls: 0, lastPulledAt: null });
    expect(byN[2]).toMatchObject({ tags: ['multi'], inIndex: false, mediaType: 'application/vnd.oci.image.index.v1+json' });
    expect(byN[3]).toMatchObject({ subject: child.digest, inIndex: false });
    expect(byN[4]).toMatchObject({ tags: ['b'], pulls: 1, lastPulledAt: new Date(1234) });
    expect(byN[5]).toMatchObject({ tags: ['a'] });
    expect(listed[0]!.pushedAt.getTime()).toBeGreaterThanOrEqual(listed[4]!.pushedAt.getTime());
    const history = await store.retention.historyDigests('team/app', new Date(since.getTime() - 1));
    expect([...history].sort()).toEqual([manifest(4).digest, manifest(5).digest]);
  });
});
