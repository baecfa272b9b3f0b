// The outbox in the metadata store, on SQLite and PostgreSQL: an event exists if and only if its
// change committed; fan-out follows the filters; concurrent claimers never get the same delivery;
// a repository's deliveries are claimed one at a time, in order; a lost lease records nothing.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MissingReferenceError, type MetadataStore, type NewManifest } from '../../src/metadata/metadata-store.js';
import { openPostgresMetadataStore } from '../../src/metadata/sql/postgres.js';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';
import { webhookWants } from '../../src/events/filters.js';
import { createDatabase } from '../support/services.js';

const context = { actor: 'alice', actorKind: 'user', address: '10.0.0.7', node: 'node-1' };
const layer = { digest: `sha256:${'b'.repeat(64)}`, size: 7 };

function manifest(seed: string, blobs = [layer.digest]): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, seed }));
  return { digest: `sha256:${createHash('sha256').update(content).digest('hex')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: content.length, content, artifactType: null, subject: null, annotations: null, blobs, children: [] };
}

const backends: [string, () => Promise<{ store: MetadataStore; second: () => Promise<MetadataStore>; cleanup: () => Promise<void> }>][] = [
  [
    'SQLite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'stowage-outbox-'));
      const file = join(dir, 'db.sqlite');
      const store = await openSqliteMetadataStore(file);
      return {
        store,
        // SQLite has one writer at a time (processes wait for each other); a second connection in
        // this same thread would block it synchronously, so the claims share one.
        second: async () => store,
        cleanup: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const database = await createDatabase('outbox');
      const store = await openPostgresMetadataStore(database.url, { poolSize: 4 });
      const others: MetadataStore[] = [];
      return {
        store,
        second: async () => {
          const other = await openPostgresMetadataStore(database.url, { poolSize: 4 });
          others.push(other);
          return other;
        },
        cleanup: async () => {
          for (const s of [store, ...others]) await s.close();
          await database.drop();
        },
      };
    },
  ],
];

for (const [name, open] of backends) {
  describe(`outbox on ${name}`, () => {
    let store: MetadataStore;
    let second: () => Promise<MetadataStore>;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, second, cleanup } = await open());
      await store.blobs.link('team/app', layer);
    });

    afterEach(async () => {
      await cleanup();
    });

    it('writes events with the change and none for a change that did not commit', async () => {
      const m = manifest('one');
      await store.manifests.put('team/app', m, 'v1', { context });
      const missing = await store.manifests.put('team/app', manifest('two', [`sha256:${'c'.repeat(64)}`]), 'v2', { context }).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(MissingReferenceError);
      await store.tags.delete('team/app', 'v1', { context });
      await store.manifests.put('team/app', m, 'v3', { context });
      expect(await store.manifests.delete('team/app', m.digest, { context })).toBe(true);
      const events = (await store.events.recent(100)).reverse();
      expect(events.map((e) => [e.type, e.tag, e.digest, e.previousDigest])).toEqual([
        ['artifact.pushed', 'v1', m.digest, null],
        ['tag.moved', 'v1', m.digest, null],
        ['tag.deleted', 'v1', null, m.digest],
        ['artifact.pushed', 'v3', m.digest, null],
        ['tag.moved', 'v3', m.digest, null],
        ['tag.deleted', 'v3', null, m.digest],
        ['artifact.deleted', null, m.digest, null],
      ]);
      expect(events.every((e) => e.actor === 'alice' && e.actorKind === 'user' && e.address === '10.0.0.7' && e.node === 'node-1' && e.project === 'team')).toBe(true);
      expect(events[0]).toMatchObject({ mediaType: m.mediaType, size: m.size });
      const history = await store.tags.history('team/app', 'v1');
      expect(history.map((h) => h.by)).toEqual([context, context]);
      // Pushing the same manifest under the same tag again changes nothing and says nothing.
      await store.manifests.put('team/app', manifest('three'), 'v4', { context });
      const before = (await store.events.recent(100)).length;
      await store.manifests.put('team/app', manifest('three'), 'v4', { context });
      expect((await store.events.recent(100)).length).toBe(before);
    });

    it('writes project and member events in the transaction of their change, and none when nothing changed', async () => {
      const event = (type: 'project.created' | 'project.updated' | 'project.deleted' | 'member.changed' | 'member.removed', detail: Record<string, unknown>) => [
        { type, project: 'ops', repository: null, tag: null, digest: null, previousDigest: null, mediaType: null, size: null, detail, ...context },
      ];
      const control = store.control;
      expect(await control.users.create({ name: 'bob', passwordHash: 'x', email: null, admin: false })).not.toBeNull();
      expect(await control.projects.create({ name: 'ops', public: false, createdBy: 'alice' }, undefined, event('project.created', { n: 1 }))).not.toBeNull();
      expect(await control.projects.create({ name: 'ops', public: false, createdBy: 'alice' }, undefined, event('project.created', { n: 2 }))).toBeNull();
      expect((await control.projects.ensure({ name: 'ops', public: false, createdBy: 'alice' }, undefined, event('project.created', { n: 3 }))).created).toBe(false);
      expect(await control.projects.update('ops', { public: true }, event('project.updated', { public: true }))).not.toBeNull();
      expect(await control.projects.update('nowhere', { public: true }, event('project.updated', { nowhere: true }))).toBeNull();
      expect(await control.members.set('ops', 'bob', 'reader', event('member.changed', { user: 'bob' }))).toBe(true);
      expect(await control.members.set('ops', 'nobody', 'reader', event('member.changed', { user: 'nobody' }))).toBe(false);
      expect(await control.members.remove('ops', 'bob', event('member.removed', { user: 'bob' }))).toBe(true);
      expect(await control.members.remove('ops', 'bob', event('member.removed', { again: true }))).toBe(false);
      expect(await control.projects.delete('ops', false, context, event('project.deleted', { force: false }))).toBe('deleted');
      expect(await control.projects.delete('ops', false, context, event('project.deleted', { again: true }))).toBe('not-found');
      const events = (await store.events.recent(100, { project: 'ops' })).reverse();
      expect(events.map((e) => [e.type, e.detail])).toEqual([
        ['project.created', { n: 1 }],
        ['project.updated', { public: true }],
        ['member.changed', { user: 'bob' }],
        ['member.removed', { user: 'bob' }],
        ['project.deleted', { force: false }],
      ]);
      expect(events.every((e) => e.actor === 'alice' && e.node === 'node-1')).toBe(true);
    });

    it('fans out by the filters and claims each delivery once across concurrent claimers', async () => {
      const all = (await store.webhooks.create({ project: null, url: 'https://a.example/', events: [], repository: null, tag: null, format: 'stowage', headers: {}, enabled: true, secret: 's'.repeat(16), createdBy: null }))!;
      await store.webhooks.create({ project: null, url: 'https://b.example/', events: ['artifact.deleted'], repository: null, tag: null, format: 'stowage', headers: {}, enabled: true, secret: null, createdBy: null });
      await store.webhooks.create({ project: null, url: 'https://c.example/', events: [], repository: null, tag: null, format: 'stowage', headers: {}, enabled: false, secret: null, createdBy: null });
      const repositories = Array.from({ length: 12 }, (_, i) => `team/r${i}`);
      for (const repository of repositories) {
        await store.blobs.link(repository, layer);
        await store.manifests.put(repository, manifest(repository), 'v1', { context });
      }
      expect(await store.events.fanOut(1000, webhookWants)).toBe(24);
      expect(await store.events.fanOut(1000, webhookWants)).toBe(0);
      expect(await store.events.pendingCount()).toBe(24); // only the webhook that wants everything
      const other = await second();
      const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? store : other).events.claim(`node-${i}`, 5, 60_000, [])));
      const ids = claims.flat().map((c) => c.id);
      // One delivery per repository is due (each repository's second event waits for its first).
      expect(ids).toHaveLength(12);
      expect(new Set(ids).size).toBe(12);
      const claimed = claims.flat();
      expect(claimed.every((c) => c.event.type === 'artifact.pushed' && c.webhook.id === all.id && c.webhook.secret === 's'.repeat(16))).toBe(true);
      // Nothing more is due until those finish.
      expect(await store.events.claim('node-x', 100, 60_000, [])).toEqual([]);
      const first = claimed[0]!;
      expect(await store.events.finish(first.id, first.leaseUntil + 1, { status: 200, error: null, latencyMs: 1, response: null }, { state: 'delivered', nextAttemptAt: null })).toBe(false);
      expect(await store.events.finish(first.id, first.leaseUntil, { status: 200, error: null, latencyMs: 1, response: 'ok' }, { state: 'delivered', nextAttemptAt: null })).toBe(true);
      const next = await store.events.claim('node-x', 100, 60_000, []);
      expect(next.map((c) => [c.event.type, c.event.repository])).toEqual([['tag.moved', first.event.repository]]);
      expect(await store.events.claim('node-y', 100, 60_000, [all.id])).toEqual([]);
    });

    it('purges old events with their finished deliveries, and keeps what is pending', async () => {
      await store.webhooks.create({ project: null, url: 'https://a.example/', events: ['artifact.pushed'], repository: null, tag: null, format: 'stowage', headers: {}, enabled: true, secret: null, createdBy: null });
      for (const repository of ['team/x', 'team/y']) {
        await store.blobs.link(repository, layer);
        await store.manifests.put(repository, manifest(repository), undefined, { context });
      }
      await store.events.fanOut(100, webhookWants);
      const [done] = await store.events.claim('n', 1, 60_000, []);
      await store.events.finish(done!.id, done!.leaseUntil, { status: 200, error: null, latencyMs: 1, response: null }, { state: 'delivered', nextAttemptAt: null });
      expect(await store.events.purge(new Date(Date.now() - 60_000))).toBe(0);
      // One finished delivery and its event go; the pending one and its event stay.
      expect(await store.events.purge(new Date(Date.now() + 60_000))).toBe(2);
      expect((await store.events.recent(10)).map((e) => e.repository)).toEqual([done!.event.repository === 'team/x' ? 'team/y' : 'team/x']);
      expect(await store.events.pendingCount()).toBe(1);
    });
  });
}
