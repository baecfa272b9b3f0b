// Tag history, rollback and image diff in the management API: listing moves, rolling back by
// digest or by steps within the history window, permissions (pull to read, push to roll back),
// audit, and diffs of layers, config and size.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, authorizeRegistryRequests, addProject, addUser, api, apiOk, createAuthApp, sqlite, tokenFor, type Creds } from '../support/auth.js';
import { descriptorOf, ociIndex, mediaTypes, type PushedImage, type TestApp } from '../support/http-app.js';

let app: TestApp;
let dev: Creds;
let reader: Creds;
let owner: Creds;
const repo = 'team/app';

beforeAll(async () => {
  app = await createAuthApp();
  dev = await addUser(app, 'dev');
  reader = await addUser(app, 'reader');
  owner = await addUser(app, 'owner');
  await addProject(app, 'team', { members: { dev: 'developer', reader: 'reader', owner: 'owner' } });
  const token = await tokenFor(app, ADMIN, [`repository:${repo}:pull,push,delete`]);
  authorizeRegistryRequests(app, token);
});

afterAll(async () => {
  await app?.cleanup();
});

async function image(tag: string, config: object, layers: Buffer[]): Promise<PushedImage> {
  const bytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] } }));
  await app.pushBlob(repo, bytes);
  for (const layer of layers) await app.pushBlob(repo, layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: descriptorOf('application/vnd.oci.image.config.v1+json', bytes),
      layers: layers.map((l) => descriptorOf('application/vnd.oci.image.layer.v1.tar+gzip', l)),
    }),
  );
  const digest = await app.pushManifest(repo, tag, manifest);
  return { digest, manifest, descriptor: descriptorOf(mediaTypes.ociManifest, manifest), config: bytes, layers };
}

const base = Buffer.from('base layer');

describe('tag history', () => {
  let v1: PushedImage;
  let v2: PushedImage;
  let v3: PushedImage;

  beforeAll(async () => {
    v1 = await image('rel', { Env: ['PATH=/bin', 'A=1'], Entrypoint: ['/app'], Labels: { version: '1' } }, [base, Buffer.from('app 1')]);
    v2 = await image('rel', { Env: ['PATH=/bin', 'A=2', 'B=x'], Entrypoint: ['/app', '--v2'], Labels: { version: '2', team: 't' } }, [base, Buffer.from('app 2 bigger')]);
    v3 = await image('rel', { Env: ['PATH=/bin'] }, [base]);
  });

  it('lists every move newest first, with the current digest and the window', async () => {
    const history = await apiOk(app, 'GET', `/repositories/${repo}/-/tags/rel/history`, { as: reader });
    expect(history.current).toBe(v3.digest);
    expect(history.items.map((i: { previousDigest: string | null; digest: string | null }) => [i.previousDigest, i.digest])).toEqual([
      [v2.digest, v3.digest],
      [v1.digest, v2.digest],
      [null, v1.digest],
    ]);
    expect(history.items.every((i: { inWindow: boolean }) => i.inWindow)).toBe(true);
    expect(Date.parse(history.windowStart)).toBeLessThan(Date.now() - 13 * 24 * 3600 * 1000);
  });

  it('answers 404 for an unknown tag and repository, 401 for anonymous, 400 for a bad tag', async () => {
    expect((await api(app, 'GET', `/repositories/${repo}/-/tags/nope/history`, { as: reader })).statusCode).toBe(404);
    expect((await api(app, 'GET', `/repositories/team/none/-/tags/rel/history`, { as: reader })).statusCode).toBe(404);
    expect((await api(app, 'GET', `/repositories/${repo}/-/tags/rel/history`)).statusCode).toBe(401);
    expect((await api(app, 'GET', `/repositories/${repo}/-/tags/${'x'.repeat(200)}/history`, { as: reader })).statusCode).toBe(400);
    const outsider = await addUser(app, 'outsider');
    expect((await api(app, 'GET', `/repositories/${repo}/-/tags/rel/history`, { as: outsider })).statusCode).toBe(404);
  });

  it('rolls back one step by default, as a recorded move, and audits it', async () => {
    const result = await apiOk(app, 'POST', `/repositories/${repo}/-/tags/rel/rollback`, { as: dev, body: {}, status: 200 });
    expect(result).toMatchObject({ previousDigest: v3.digest, digest: v2.digest, moved: true });
    const pulled = await app.get(`/v2/${repo}/manifests/rel`, { accept: mediaTypes.ociManifest });
    expect(pulled.headers['docker-content-digest']).toBe(v2.digest);
    const history = await apiOk(app, 'GET', `/repositories/${repo}/-/tags/rel/history`, { as: dev });
    expect(history.items[0]).toMatchObject({ previousDigest: v3.digest, digest: v2.digest });
    const audit = await apiOk(app, 'GET', '/audit?action=tag.rollback', { as: ADMIN });
    expect(audit.items[0]).toMatchObject({ actor: 'dev', target: `${repo}:rel`, result: 'success' });
  });

  it('rolls back to a digest or N steps, and does nothing when already there', async () => {
    expect(await apiOk(app, 'POST', `/repositories/${repo}/-/tags/rel/rollback`, { as: dev, body: { to: v1.digest }, status: 200 })).toMatchObject({ digest: v1.digest, moved: true });
    // Moves, newest first: v2->v1, v3->v2, v2->v3, v1->v2, null->v1. Three steps back: v2.
    expect(await apiOk(app, 'POST', `/repositories/${repo}/-/tags/rel/rollback`, { as: dev, body: { steps: 3 }, status: 200 })).toMatchObject({ digest: v2.digest });
    expect(await apiOk(app, 'POST', `/repositories/${repo}/-/tags/rel/rollback`, { as: dev, body: { to: v2.digest }, status: 200 })).toMatchObject({ moved: false });
  });

  it('refuses what cannot be restored', async () => {
    const rollback = (body: unknown, as: Creds = dev) => api(app, 'POST', `/repositories/${repo}/-/tags/rel/rollback`, { as, body });
    expect((await rollback({ steps: 100 })).statusCode).toBe(409);
    expect((await rollback({ steps: 6 })).json().error.message).toContain('did not exist');
    const other = await image('other', {}, [Buffer.from('other')]);
    expect((await rollback({ to: other.digest })).statusCode).toBe(409);
    expect((await rollback({ to: 'sha256:nope' })).json().error.fields).toEqual([{ field: 'to', message: expect.stringContaining('digest') }]);
    expect((await rollback({ to: v1.digest, steps: 1 })).statusCode).toBe(400);
    expect((await rollback({ steps: 0 })).statusCode).toBe(400);
    expect((await rollback({ to: v1.digest }, reader)).statusCode).toBe(403);
    expect((await api(app, 'POST', `/repositories/${repo}/-/tags/missing/rollback`, { as: dev, body: {} })).statusCode).toBe(404);
  });

  it('does not restore a deleted manifest', async () => {
    const gone = await image('temp', {}, [Buffer.from('gone')]);
    await image('temp', {}, [Buffer.from('kept')]);
    expect((await app.delete(`/v2/${repo}/manifests/${gone.digest}`)).statusCode).toBe(202);
    const response = await api(app, 'POST', `/repositories/${repo}/-/tags/temp/rollback`, { as: dev, body: {} });
    expect(response.statusCode).toBe(409);
    expect(response.json().error.message).toContain('no longer in');
  });

  it('restores a deleted tag (a move to nothing) one step back', async () => {
    const kept = await image('deleted', {}, [Buffer.from('d')]);
    await apiOk(app, 'DELETE', `/repositories/${repo}/-/tags/deleted`, { as: ADMIN });
    const history = await apiOk(app, 'GET', `/repositories/${repo}/-/tags/deleted/history`, { as: dev });
    expect(history.current).toBeNull();
    expect(history.items[0]).toMatchObject({ previousDigest: kept.digest, digest: null });
    expect(await apiOk(app, 'POST', `/repositories/${repo}/-/tags/deleted/rollback`, { as: dev, body: {}, status: 200 })).toMatchObject({ previousDigest: null, digest: kept.digest });
  });

  it('only restores digests named inside the history window', async () => {
    const old = await image('aged', {}, [Buffer.from('old')]);
    await image('aged', {}, [Buffer.from('new')]);
    sqlite(app, `update tag_history set at = at - ? where tag = 'aged'`, 15 * 24 * 3600 * 1000);
    const history = await apiOk(app, 'GET', `/repositories/${repo}/-/tags/aged/history`, { as: dev });
    expect(history.items.map((i: { inWindow: boolean }) => i.inWindow)).toEqual([false, false]);
    expect((await api(app, 'POST', `/repositories/${repo}/-/tags/aged/rollback`, { as: dev, body: {} })).json().error.message).toContain('history window');
    expect((await api(app, 'POST', `/repositories/${repo}/-/tags/aged/rollback`, { as: dev, body: { to: old.digest } })).statusCode).toBe(409);
  });

  it('use the project\'s own history window, which only owners set', async () => {
    expect(await apiOk(app, 'GET', '/projects/team/lifecycle', { as: reader })).toEqual({ project: 'team', historyWindowMs: 14 * 86_400_000, custom: false });
    expect((await api(app, 'PUT', '/projects/team/lifecycle', { as: dev, body: { historyWindow: '30d' } })).statusCode).toBe(403);
    expect((await api(app, 'PUT', '/projects/team/lifecycle', { as: owner, body: { historyWindow: '1s' } })).json().error.fields).toEqual([{ field: 'historyWindow', message: 'between 1h and 3650d' }]);
    expect((await api(app, 'PUT', '/projects/team/lifecycle', { as: owner, body: {} })).statusCode).toBe(400);
    expect((await api(app, 'GET', '/projects/nope/lifecycle', { as: ADMIN })).statusCode).toBe(404);
    expect((await api(app, 'GET', '/projects/team/lifecycle', { as: await addUser(app, 'stranger') })).statusCode).toBe(404);
    expect(await apiOk(app, 'PUT', '/projects/team/lifecycle', { as: owner, body: { historyWindow: '30d' }, status: 200 })).toEqual({ project: 'team', historyWindowMs: 30 * 86_400_000, custom: true });

    // The 15-day-old moves of `aged` are inside a 30-day window.
    const history = await apiOk(app, 'GET', `/repositories/${repo}/-/tags/aged/history`, { as: dev });
    expect(history.items.map((i: { inWindow: boolean }) => i.inWindow)).toEqual([true, true]);
    expect(await apiOk(app, 'POST', `/repositories/${repo}/-/tags/aged/rollback`, { as: dev, body: {}, status: 200 })).toMatchObject({ moved: true });
    const audit = await apiOk(app, 'GET', '/audit?action=project.lifecycle', { as: ADMIN });
    expect(audit.items[0]).toMatchObject({ actor: 'owner', target: 'team', result: 'success' });

    expect(await apiOk(app, 'PUT', '/projects/team/lifecycle', { as: owner, body: { historyWindow: null }, status: 200 })).toMatchObject({ custom: false, historyWindowMs: 14 * 86_400_000 });
  });

  it('diffs two images: layers, config and size', async () => {
    const diff = await apiOk(app, 'GET', `/repositories/${repo}/-/diff?from=${v1.digest}&to=${v2.digest}`, { as: reader });
    expect(diff.identical).toBe(false);
    expect(diff.layers.shared.map((l: { digest: string }) => l.digest)).toEqual([descriptorOf('x', base).digest]);
    expect(diff.layers.removed).toHaveLength(1);
    expect(diff.layers.added).toHaveLength(1);
    expect(diff.config.env).toEqual({ added: { B: 'x' }, removed: {}, changed: { A: { from: '1', to: '2' } } });
    expect(diff.config.labels).toEqual({ added: { team: 't' }, removed: {}, changed: { version: { from: '1', to: '2' } } });
    expect(diff.config.entrypoint).toEqual({ from: ['/app'], to: ['/app', '--v2'] });
    expect(diff.config.cmd).toBeNull();
    expect(diff.sizeChange).toBe(diff.to.size - diff.from.size);
    expect(diff.sizeChange).toBe(v2.config.length - v1.config.length + 'app 2 bigger'.length - 'app 1'.length);

    const byTag = await apiOk(app, 'GET', `/repositories/${repo}/-/diff?from=rel&to=${v2.digest}`, { as: reader });
    expect(byTag.identical).toBe(true);
    expect(byTag.sizeChange).toBe(0);
  });

  it('refuses diffs of indexes, unknown references and bad queries', async () => {
    const index = ociIndex({ manifests: [descriptorOf(mediaTypes.ociManifest, v1.manifest)] });
    const indexDigest = await app.pushManifest(repo, 'multi', index, mediaTypes.ociIndex);
    expect((await api(app, 'GET', `/repositories/${repo}/-/diff?from=${indexDigest}&to=rel`, { as: reader })).json().error.message).toContain('index');
    expect((await api(app, 'GET', `/repositories/${repo}/-/diff?from=rel&to=nope`, { as: reader })).statusCode).toBe(404);
    expect((await api(app, 'GET', `/repositories/${repo}/-/diff?from=rel`, { as: reader })).statusCode).toBe(400);
    expect((await api(app, 'GET', `/repositories/${repo}/-/diff?from=rel&to=sha256:x`, { as: reader })).statusCode).toBe(400);
  });
});
