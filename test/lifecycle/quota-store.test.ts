// Quota accounting in the metadata store, on SQLite and PostgreSQL: unique blobs per project,
// refusals inside the linking transaction, exactness under concurrent links and unlinks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuotaExceededError } from '../../src/metadata/housekeeping-store.js';
import type { MetadataStore, NewManifest } from '../../src/metadata/metadata-store.js';
import { metadataBackends, type MetadataBackend } from '../support/metadata-backends.js';

const backends = metadataBackends('quota');

function blob(n: number, size = 1000) {
  return { digest: `sha256:${n.toString(16).padStart(64, '0')}`, size };
}

function manifest(n: number, blobs: string[]): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, n }));
  return { digest: `sha256:${(0xf000 + n).toString(16).padStart(64, 'e')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: content.length, content, artifactType: null, subject: null, annotations: null, blobs, children: [] };
}

describe.each(backends)('quotas on %s', (_name, open) => {
  let backend: MetadataBackend;
  let store: MetadataStore;

  beforeAll(async () => {
    backend = await open();
    store = backend.stores[0]!;
    for (const name of ['team', 'other']) await store.control.projects.create({ name, public: false, createdBy: null });
  }, 60_000);
  afterAll(async () => backend?.cleanup());

  it('counts unique blobs of the project once, whatever the number of repositories holding them', async () => {
    expect(await store.quotas.get('team')).toEqual({ bytes: null, repositories: null });
    expect(await store.quotas.get('nope')).toBeNull();
    await store.blobs.link('team/a', blob(1));
    await store.blobs.link('team/b', blob(1));
    await store.blobs.link('team/b', blob(2, 500));
    await store.blobs.link('other/a', blob(3, 7));
    // `teamx/…` is not in `team` (the range ends before '0'; '-' and '.' sort before '/').
    await store.control.projects.create({ name: 'team-x', public: false, createdBy: null });
    await store.blobs.link('team-x/a', blob(4, 9));
    expect(await store.quotas.usage('team')).toEqual({ bytes: 1500, blobs: 2, repositories: 2 });
    expect(await store.quotas.usage('other')).toEqual({ bytes: 7, blobs: 1, repositories: 1 });
  });

  it('refuses a link beyond the byte quota inside the transaction, admits blobs already held, and frees on unlink', async () => {
    expect(await store.quotas.set('team', { bytes: 2000, repositories: null })).toBe(true);
    const refused = await store.blobs.link('team/a', blob(5, 501)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(QuotaExceededError);
    expect((refused as Error).message).toBe('quota exceeded: used 1500 of 2000 bytes in project team; this push needs 501 more — delete images or ask an owner to raise the quota');
    expect(await store.blobs.getInRepository('team/a', blob(5).digest)).toBeNull();
    // The check before writing bytes agrees (without a lock), and admits blobs already held.
    await expect(store.quotas.precheck('team/x', blob(5, 501))).rejects.toMatchObject({ used: 1500, limit: 2000, adding: 501 });
    await store.quotas.precheck('team/x', blob(5, 500));
    await store.quotas.precheck('team/x', blob(1));
    await store.quotas.precheck('other/x', blob(5, 10_000)); // no quota there
    // A blob the project already holds adds nothing (a mount within the project, a new repository).
    await store.blobs.link('team/c', blob(2, 500));
    await store.blobs.link('team/a', blob(6, 500));
    expect((await store.quotas.usage('team')).bytes).toBe(2000);
    await store.blobs.unlink('team/a', blob(6).digest);
    expect((await store.quotas.usage('team')).bytes).toBe(1500);
    await store.blobs.unlink('team/c', blob(2).digest);
    expect((await store.quotas.usage('team')).bytes).toBe(1500); // still in team/b
    // Upload completion links through the same check.
    await store.uploads.create({ id: 'big', repository: 'team/a' });
    await expect(store.uploads.complete('big', blob(7, 600))).rejects.toBeInstanceOf(QuotaExceededError);
    expect(await store.uploads.get('big')).not.toBeNull(); // nothing committed: the session stays
  });

  it('announces a quota.warning once when a link takes usage past 90% of the quota, and again after it fell back', async () => {
    await store.control.projects.create({ name: 'warn', public: false, createdBy: null });
    expect(await store.quotas.set('warn', { bytes: 1000, repositories: null })).toBe(true);
    const warnings = async () => (await store.events.recent(1000, { project: 'warn' })).filter((e) => e.type === 'quota.warning');
    await store.blobs.link('warn/a', blob(0x100, 500));
    await store.blobs.link('warn/a', blob(0x101, 350));
    expect(await warnings()).toEqual([]);
    await store.blobs.link('warn/b', blob(0x102, 100)); // 950 of 1000
    await store.blobs.link('warn/b', blob(0x103, 40)); // 990: already past the line
    const first = await warnings();
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ repository: 'warn/b', digest: blob(0x102).digest, size: 100, detail: { used: 950, limit: 1000, percent: 95 } });
    await store.blobs.unlink('warn/a', blob(0x101).digest); // 640
    await store.blobs.link('warn/a', blob(0x104, 300)); // 940: crosses again
    expect(await warnings()).toHaveLength(2);
  });

  it('limits the number of repositories and refuses new manifests while over the byte quota', async () => {
    await store.quotas.set('team', { bytes: null, repositories: 2 });
    // team/c holds nothing any more: repositories count while they have content.
    expect((await store.quotas.usage('team')).repositories).toBe(2);
    const refused = await store.blobs.link('team/d', blob(8)).catch((e: unknown) => e);
    expect(refused).toMatchObject({ kind: 'repositories', used: 2, limit: 2 });
    expect((refused as Error).message).toMatch(/^quota exceeded: used 2 of 2 repositories in project team/);
    expect(await store.repositories.exists('team/d')).toBe(false);
    await store.blobs.link('team/a', blob(9, 10)); // existing repository: fine

    await store.manifests.put('team/a', manifest(1, [blob(1).digest]), 'v1');
    await store.quotas.set('team', { bytes: 1000, repositories: null }); // lowered below usage
    await expect(store.manifests.put('team/a', manifest(2, [blob(1).digest]), 'v2')).rejects.toMatchObject({ kind: 'bytes', used: 1510, limit: 1000 });
    await store.manifests.put('team/a', manifest(1, [blob(1).digest]), 'again'); // tagging a stored manifest adds nothing
    expect(await store.tags.get('team/a', 'again')).not.toBeNull();
    await store.quotas.set('team', { bytes: null, repositories: null });
    expect(await store.quotas.get('team')).toEqual({ bytes: null, repositories: null });
    await store.manifests.put('team/a', manifest(2, [blob(1).digest]), 'v2');
  });

  it('admits exactly the concurrent pushes that fit', async () => {
    await store.control.projects.create({ name: 'race', public: false, createdBy: null });
    await store.quotas.set('race', { bytes: 3500, repositories: null });
    const attempts = Array.from({ length: 8 }, (_, i) => {
      const s = backend.stores[i % backend.stores.length]!;
      return s.blobs.link(`race/r${i % 3}`, blob(100 + i)).then(() => 'ok', (e: unknown) => (e instanceof QuotaExceededError ? 'refused' : Promise.reject(e)));
    });
    const results = await Promise.all(attempts);
    expect(results.filter((r) => r === 'ok')).toHaveLength(3);
    expect(await store.quotas.usage('race')).toMatchObject({ bytes: 3000, blobs: 3 });

    // Deletes and pushes at once: usage stays the sum of what is linked, never over the quota.
    const linked = [100, 101, 102, 103, 104, 105, 106, 107].filter((_, i) => results[i] === 'ok');
    const mixed = await Promise.all([
      ...linked.slice(0, 2).map((n, i) => backend.stores[i % backend.stores.length]!.blobs.unlink(`race/r${(n - 100) % 3}`, blob(n).digest).then(() => -n)),
      ...Array.from({ length: 6 }, (_, i) =>
        backend.stores[i % backend.stores.length]!.blobs.link('race/r9', blob(200 + i)).then(() => 200 + i, (e: unknown) => (e instanceof QuotaExceededError ? 0 : Promise.reject(e))),
      ),
    ]);
    const remaining = linked.slice(2).length + mixed.filter((n) => n >= 200).length;
    const usage = await store.quotas.usage('race');
    expect(usage).toMatchObject({ bytes: remaining * 1000, blobs: remaining });
    expect(usage.bytes).toBeLessThanOrEqual(3500);
  }, 60_000);
});
