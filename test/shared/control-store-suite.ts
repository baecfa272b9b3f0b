import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MetadataStore } from '../../src/metadata/metadata-store.js';
import { testManifest } from '../support/manifests.js';

export interface ControlStoreFixture {
  store: MetadataStore;
  /**
   * Another store (another node) on the same database, to race against; absent where that
   * cannot run in one process (better-sqlite3 blocks the event loop while it waits for a lock:
   * there the cross-process race is tested with real processes, in test/auth/serve-auth.test.ts).
   */
  another?(): Promise<MetadataStore>;
  cleanup(): Promise<void>;
}

function digestOf(data: string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

const blob = (name: string) => ({ digest: digestOf(`blob ${name}`), size: 1000 + name.length });

const manifestOf = testManifest;

const page = { offset: 0, limit: 100 };

/**
 * The behaviour every ControlStore must have (identity and access-control metadata), run
 * unchanged against each backend.
 */
export function controlStoreSuite(name: string, create: () => Promise<ControlStoreFixture>): void {
  describe(`ControlStore: ${name}`, () => {
    let fixture: ControlStoreFixture;
    let metadata: MetadataStore;
    const others: MetadataStore[] = [];

    beforeEach(async () => {
      fixture = await create();
      metadata = fixture.store;
    });

    afterEach(async () => {
      for (const other of others.splice(0)) await other.close();
      await fixture.cleanup();
    });

    /** Stores that race: this one and two others, or this one three times. */
    const racers = async (): Promise<MetadataStore[]> => {
      if (!fixture.another) return [metadata, metadata, metadata];
      const more = [await fixture.another(), await fixture.another()];
      others.push(...more);
      return [metadata, ...more];
    };

    it('creates users once per name, finds, lists with filters and a total, updates and deletes them', async () => {
      const users = metadata.control.users;
      const alice = await users.create({ name: 'alice', passwordHash: 'h1', email: 'a@example.com' });
      expect(alice).toMatchObject({ name: 'alice', email: 'a@example.com', admin: false, disabled: false, provider: 'local', lastLoginAt: null });
      expect(await users.create({ name: 'alice', passwordHash: 'h2' })).toBeNull();
      await users.create({ name: 'bob_1', passwordHash: 'h3', admin: true });
      await users.create({ name: 'bobx1', passwordHash: 'h4' });
      expect((await users.getWithPassword('alice'))?.passwordHash).toBe('h1');
      expect((await users.getById(alice!.id))?.name).toBe('alice');

      // `_` in the query is a literal, not a LIKE wildcard.
      const found = await users.list({ query: 'bob_' }, page);
      expect(found.items.map((u) => u.name)).toEqual(['bob_1']);
      expect((await users.list({}, { offset: 1, limit: 1 })).items.map((u) => u.name)).toEqual(['bob_1']);
      expect((await users.list({}, { offset: 1, limit: 1 })).total).toBe(3);

      const disabled = await users.update('alice', { disabled: true, passwordHash: 'h5', email: null });
      expect(disabled).toMatchObject({ disabled: true, email: null });
      expect((await users.getWithPassword('alice'))?.passwordHash).toBe('h5');
      expect((await users.list({ disabled: true }, page)).items.map((u) => u.name)).toEqual(['alice']);
      await users.touchLogin(alice!.id);
      expect((await users.get('alice'))?.lastLoginAt).toBeInstanceOf(Date);
      expect(await users.update('nobody', { admin: true })).toBeNull();
      expect(await users.delete('alice')).toBe(true);
      expect(await users.delete('alice')).toBe(false);
    });

    it('creates the first admin once per database, even when several processes race', async () => {
      const stores = await racers();
      const results = await Promise.all(stores.map((s, i) => s.control.users.createInitialAdmin({ name: 'admin', passwordHash: `h${i}` })));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect((await metadata.control.users.get('admin'))?.admin).toBe(true);
      // Once done, never again, even after the admin is gone.
      await metadata.control.users.delete('admin');
      expect(await metadata.control.users.createInitialAdmin({ name: 'admin', passwordHash: 'x' })).toBeNull();
    });

    it('keeps projects with visibility, owners and members; lists what a user may see', async () => {
      const { users, projects, members } = metadata.control;
      const alice = (await users.create({ name: 'alice', passwordHash: null }))!;
      const bob = (await users.create({ name: 'bob', passwordHash: null }))!;
      const team = await projects.create({ name: 'team', public: false, createdBy: 'alice' }, alice.id);
      expect(team).toMatchObject({ name: 'team', public: false, createdBy: 'alice' });
      expect(await projects.create({ name: 'team', public: true, createdBy: 'bob' })).toBeNull();
      await projects.create({ name: 'open', public: true, createdBy: null });
      await projects.create({ name: 'secret', public: false, createdBy: null });
      expect(await members.role(team!.id, alice.id)).toBe('owner');

      expect(await members.set('team', 'bob', 'developer')).toBe(true);
      expect(await members.set('team', 'bob', 'reader')).toBe(true);
      expect(await members.set('team', 'nobody', 'reader')).toBe(false);
      expect(await members.set('nowhere', 'bob', 'reader')).toBe(false);
      expect((await members.list('team')).map((m) => [m.userName, m.role])).toEqual([
        ['alice', 'owner'],
        ['bob', 'reader'],
      ]);
      expect(await members.projectsOf(bob.id)).toEqual([{ project: 'team', role: 'reader' }]);

      const names = async (visibleTo: Parameters<typeof projects.list>[0]['visibleTo']) => (await projects.list({ visibleTo }, page)).items.map((p) => p.name);
      expect(await names({ all: true })).toEqual(['open', 'secret', 'team']);
      expect(await names({ userId: bob.id })).toEqual(['open', 'team']);
      expect(await names({ userId: null })).toEqual(['open']);

      const ensured = await projects.ensure({ name: 'team', public: true, createdBy: 'x' });
      expect(ensured).toMatchObject({ created: false, project: { public: false } });
      const fresh = await projects.ensure({ name: 'fresh', public: false, createdBy: 'bob' }, bob.id);
      expect(fresh.created).toBe(true);
      expect(await members.role(fresh.project.id, bob.id)).toBe('owner');

      expect((await projects.update('team', { public: true }))?.public).toBe(true);
      expect(await members.remove('team', 'bob')).toBe(true);
      expect(await members.remove('team', 'bob')).toBe(false);
    });

    it('deletes a project only when empty, or with force together with its repositories', async () => {
      const { projects, catalog } = metadata.control;
      await projects.create({ name: 'team', public: false, createdBy: null });
      await projects.create({ name: 'team_x', public: false, createdBy: null });
      for (const repo of ['team/app', 'team/lib/core', 'team_x/app', 'teamx/app', 'team0']) await metadata.blobs.link(repo, blob(repo));
      await metadata.uploads.create({ id: '00000000-0000-4000-8000-000000000001', repository: 'team/app' });
      expect(await projects.delete('team', false)).toBe('not-empty');
      expect(await projects.delete('team', true)).toBe('deleted');
      expect(await projects.get('team')).toBeNull();
      expect(await catalog.names({}, undefined, 100)).toEqual(['team0', 'team_x/app', 'teamx/app']);
      expect(await metadata.uploads.get('00000000-0000-4000-8000-000000000001')).toBeNull();
      expect(await projects.delete('team', true)).toBe('not-found');
      await metadata.blobs.unlink('team_x/app', blob('team_x/app').digest);
      expect(await projects.delete('team_x', false)).toBe('deleted');
    });

    it('keeps robots with their permissions, per project or for the system', async () => {
      const { projects, robots } = metadata.control;
      await projects.create({ name: 'team', public: false, createdBy: null });
      const expiresAt = new Date(Date.now() + 3_600_000);
      const robot = await robots.create({ name: 'robot$team+ci', project: 'team', secretHash: 'abc', permissions: ['repository:team/**:pull'], description: 'CI', expiresAt, createdBy: 'alice' });
      expect(robot).toMatchObject({ name: 'robot$team+ci', project: 'team', permissions: ['repository:team/**:pull'], description: 'CI', disabled: false });
      expect(robot!.expiresAt?.getTime()).toBe(expiresAt.getTime());
      expect(await robots.create({ name: 'robot$team+ci', project: 'team', secretHash: 'x', permissions: [], description: null, expiresAt: null, createdBy: null })).toBeNull();
      expect(await robots.create({ name: 'robot$none+ci', project: 'none', secretHash: 'x', permissions: [], description: null, expiresAt: null, createdBy: null })).toBeNull();
      await robots.create({ name: 'robot$sys', project: null, secretHash: 'def', permissions: ['repository:**:pull'], description: null, expiresAt: null, createdBy: null });
      expect((await robots.getWithSecret('robot$sys'))?.secretHash).toBe('def');
      expect((await robots.list({ project: 'team' }, page)).items.map((r) => r.name)).toEqual(['robot$team+ci']);
      expect((await robots.list({ project: null }, page)).items.map((r) => r.name)).toEqual(['robot$sys']);
      expect((await robots.list({}, page)).total).toBe(2);
      await robots.touch(robot!.id);
      expect((await robots.getById(robot!.id))?.lastUsedAt).toBeInstanceOf(Date);
      // A project's robots go with it.
      await projects.delete('team', false);
      expect(await robots.get('robot$team+ci')).toBeNull();
      expect(await robots.delete((await robots.get('robot$sys'))!.id)).toBe(true);
    });

    it('keeps personal access tokens by hash; revokes once', async () => {
      const { users, personalTokens } = metadata.control;
      const alice = (await users.create({ name: 'alice', passwordHash: null }))!;
      const token = await personalTokens.create({ userId: alice.id, name: 'laptop', tokenHash: 'hash1', scopes: ['api'], expiresAt: null });
      expect(token).toMatchObject({ userName: 'alice', name: 'laptop', scopes: ['api'], revokedAt: null });
      expect((await personalTokens.findByHash('hash1'))?.id).toBe(token.id);
      expect(await personalTokens.findByHash('hash2')).toBeNull();
      await personalTokens.create({ userId: alice.id, name: 'ci', tokenHash: 'hash2', scopes: ['repository:a/*:pull'], expiresAt: new Date() });
      expect((await personalTokens.list(alice.id)).map((t) => t.name)).toEqual(['ci', 'laptop']);
      expect(await personalTokens.revoke(token.id)).toBe(true);
      expect(await personalTokens.revoke(token.id)).toBe(false);
      expect((await personalTokens.getById(token.id))?.revokedAt).toBeInstanceOf(Date);
      await users.delete('alice');
      expect(await personalTokens.findByHash('hash2')).toBeNull();
    });

    it('uses refresh tokens and sessions until they expire or are deleted', async () => {
      const { users, refreshTokens, sessions } = metadata.control;
      const alice = (await users.create({ name: 'alice', passwordHash: null }))!;
      const future = new Date(Date.now() + 60_000);
      await refreshTokens.create({ tokenHash: 'r1', subjectKind: 'user', subjectId: alice.id, personalTokenId: null, service: 'stowage', expiresAt: future });
      await refreshTokens.create({ tokenHash: 'r2', subjectKind: 'user', subjectId: alice.id, personalTokenId: '7', service: 'stowage', expiresAt: new Date(Date.now() - 1) });
      expect(await refreshTokens.use('r1')).toMatchObject({ subjectKind: 'user', subjectId: alice.id, personalTokenId: null, service: 'stowage' });
      expect(await refreshTokens.use('r2')).toBeNull();
      expect(await refreshTokens.purgeExpired()).toBe(1);
      expect(await refreshTokens.deleteForSubject('user', alice.id)).toBe(1);
      expect(await refreshTokens.use('r1')).toBeNull();

      const session = await sessions.create({ tokenHash: 's1', userId: alice.id, csrfToken: 'csrf', address: '127.0.0.1', expiresAt: future });
      expect(await sessions.use('s1')).toMatchObject({ id: session.id, userId: alice.id, csrfToken: 'csrf' });
      await sessions.create({ tokenHash: 's2', userId: alice.id, csrfToken: 'c2', address: null, expiresAt: new Date(Date.now() - 1) });
      expect(await sessions.use('s2')).toBeNull();
      expect(await sessions.purgeExpired()).toBe(1);
      expect(await sessions.delete('s1')).toBe(true);
      expect(await sessions.deleteForUser(alice.id)).toBe(0);
    });

    it('stores the first signing key once across processes; rotation retires the active key', async () => {
      const keys = metadata.control.signingKeys;
      const key = (kid: string, at = new Date()) => ({ kid, privateJwk: `{"k":"${kid}"}`, publicJwk: '{}', createdAt: at });
      const stores = await racers();
      const won = await Promise.all(stores.map((s, i) => s.control.signingKeys.insertInitial(key(`k${i}`))));
      expect(won.filter(Boolean)).toHaveLength(1);
      const [first] = await keys.list(new Date());
      expect(first?.retiredAt).toBeNull();
      await keys.rotate(key('k9', new Date(Date.now() + 1)));
      const listed = await keys.list(new Date(Date.now() - 60_000));
      expect(listed.map((k) => [k.kid, k.retiredAt === null])).toEqual([
        ['k9', true],
        [first!.kid, false],
      ]);
      expect(await keys.list(new Date(Date.now() + 60_000))).toHaveLength(1);
      expect(await keys.purgeRetired(new Date(Date.now() + 60_000))).toBe(1);
      expect(await keys.insertInitial(key('again'))).toBe(false);
    });

    it('records revocations and login failures per window', async () => {
      const { revocations, loginFailures } = metadata.control;
      const before = new Date(Date.now() - 1000);
      await revocations.revoke('user:1');
      await revocations.revoke('user:1');
      await revocations.revoke('pat:2');
      expect((await revocations.since(before)).map((r) => r.subject).sort()).toEqual(['pat:2', 'user:1']);
      expect(await revocations.since(new Date(Date.now() + 60_000))).toEqual([]);
      expect(await revocations.purge(new Date(Date.now() + 60_000))).toBe(2);

      const windowStart = new Date(Date.now() - 60_000);
      for (let i = 0; i < 3; i++) await loginFailures.record('user:alice', windowStart);
      await loginFailures.record('address:10.0.0.1', windowStart);
      const counts = await loginFailures.counts(['user:alice', 'address:10.0.0.1', 'user:bob'], windowStart);
      expect(counts.get('user:alice')?.count).toBe(3);
      expect(counts.get('address:10.0.0.1')?.count).toBe(1);
      expect(counts.has('user:bob')).toBe(false);
      // A window that has passed starts over.
      await loginFailures.record('user:alice', new Date(Date.now() + 1000));
      expect((await loginFailures.counts(['user:alice'], windowStart)).get('user:alice')?.count).toBe(1);
      await loginFailures.clear('user:alice');
      expect((await loginFailures.counts(['user:alice'], windowStart)).size).toBe(0);
      expect(await loginFailures.purge(new Date(Date.now() + 60_000))).toBe(1);
    });

    it('appends audit entries and queries them by actor, project, action, result and time, newest first', async () => {
      const audit = metadata.control.audit;
      const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s));
      const entry = (s: number, actor: string, action: string, project: string | null, result: 'success' | 'failure' = 'success') => ({
        at: at(s),
        actor,
        actorKind: 'user',
        address: '127.0.0.1',
        action,
        project,
        target: project ? `${project}/app:v${s}` : actor,
        result,
        detail: { n: s },
      });
      await audit.append([entry(1, 'alice', 'login', null), entry(2, 'alice', 'manifest.push', 'team'), entry(3, 'bob', 'manifest.pull', 'team'), entry(4, 'bob', 'login', null, 'failure')]);
      await audit.append(Array.from({ length: 450 }, (_, i) => entry(10 + i, 'robot$x', 'manifest.pull', 'other')));
      const all = await audit.query({}, { offset: 0, limit: 3 });
      expect(all.total).toBe(454);
      expect(all.items.map((e) => e.detail?.n)).toEqual([459, 458, 457]);
      // The 450 went in as multi-row chunks of different sizes: every row once, values in place.
      const robot = await audit.query({ actor: 'robot$x' }, { offset: 0, limit: 450 });
      expect(robot.items.map((e) => e.detail?.n)).toEqual(Array.from({ length: 450 }, (_, i) => 459 - i));
      expect(robot.items.every((e) => e.target === `other/app:v${e.detail?.n}` && e.at.getTime() === at(e.detail!.n as number).getTime())).toBe(true);
      expect((await audit.query({ actor: 'bob' }, page)).items.map((e) => e.action)).toEqual(['login', 'manifest.pull']);
      expect((await audit.query({ project: 'team' }, page)).items.map((e) => e.actor)).toEqual(['bob', 'alice']);
      expect((await audit.query({ action: 'login', result: 'failure' }, page)).items).toMatchObject([{ actor: 'bob', target: 'bob', address: '127.0.0.1' }]);
      expect((await audit.query({ from: at(2), to: at(4) }, page)).items.map((e) => e.detail?.n)).toEqual([3, 2]);
      expect(await audit.purge(at(10))).toBe(4);
      expect((await audit.query({}, page)).total).toBe(450);
      // An entry that stands for repeated events keeps its count; one without stands for one.
      expect(robot.items.every((e) => e.count === 1)).toBe(true);
      await audit.append([{ ...entry(500, 'carol', 'manifest.pull', 'team'), count: 1234 }]);
      expect((await audit.query({ actor: 'carol' }, page)).items).toMatchObject([{ action: 'manifest.pull', count: 1234, target: 'team/app:v500' }]);
    });

    it('lists, summarises and deletes repositories, and lists tags with sizes for the API', async () => {
      const catalog = metadata.control.catalog;
      const layer = blob('layer');
      for (const repo of ['team/app', 'team/tool', 'team_y/app', 'other/app', 'team']) await metadata.blobs.link(repo, layer);
      const image = manifestOf('one', [layer.digest]);
      await metadata.manifests.put('team/app', image, 'v1');
      await metadata.manifests.put('team/app', image, 'latest');

      expect(await catalog.names({}, undefined, 100)).toEqual(['other/app', 'team', 'team/app', 'team/tool', 'team_y/app']);
      expect(await catalog.names({ projects: ['team'] }, undefined, 100)).toEqual(['team', 'team/app', 'team/tool']);
      expect(await catalog.names({ projects: ['team'] }, 'team', 1)).toEqual(['team/app']);
      expect(await catalog.names({ query: 'y/a' }, undefined, 100)).toEqual(['team_y/app']);
      expect(await catalog.names({ projects: [] }, undefined, 100)).toEqual([]);
      // Many projects are filtered while reading instead of in SQL.
      const many = ['other', ...Array.from({ length: 60 }, (_, i) => `p${i}`)];
      expect(await catalog.names({ projects: many }, undefined, 100)).toEqual(['other/app']);

      const [summary] = await catalog.summaries(['team/app']);
      expect(summary).toMatchObject({ name: 'team/app', tags: 2, manifests: 1 });
      expect(summary!.updatedAt).toBeInstanceOf(Date);

      const tags = await catalog.tags('team/app', { offset: 0, limit: 1 });
      expect(tags.total).toBe(2);
      expect(tags.items).toEqual([
        { name: 'latest', digest: image.digest, mediaType: image.mediaType, size: image.size + layer.size, pushedAt: expect.any(Date) },
      ]);

      expect(await catalog.deleteRepository('team/app')).toBe(true);
      expect(await catalog.deleteRepository('team/app')).toBe(false);
      expect(await metadata.manifests.get('team/app', image.digest)).toBeNull();
      expect(await metadata.blobs.getInRepository('team/tool', layer.digest)).not.toBeNull();
    });
  });
}
