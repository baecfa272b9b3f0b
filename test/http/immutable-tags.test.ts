// Immutable tags: per-project rules (owners only), refusals of moves and deletions through /v2,
// the management API and rollback with 403 DENIED naming the rule, and every refusal audited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, authorizeRegistryRequests, addProject, addUser, api, apiOk, createAuthApp, tokenFor, type Creds } from '../support/auth.js';
import { ociError, type TestApp } from '../support/http-app.js';

let app: TestApp;
let owner: Creds;
let dev: Creds;

beforeAll(async () => {
  app = await createAuthApp();
  owner = await addUser(app, 'owner');
  dev = await addUser(app, 'dev');
  await addProject(app, 'team', { members: { owner: 'owner', dev: 'developer' } });
  const token = await tokenFor(app, ADMIN, ['repository:team/app:pull,push,delete', 'repository:team/lib:pull,push,delete']);
  authorizeRegistryRequests(app, token);
});

afterAll(async () => {
  await app?.cleanup();
});

describe('immutable tag rules', () => {
  let ruleId: string;

  it('are managed by project owners only, with validated patterns', async () => {
    expect((await api(app, 'POST', '/projects/team/immutable-tags', { as: dev, body: { tag: 'v*' } })).statusCode).toBe(403);
    const outside = await api(app, 'POST', '/projects/team/immutable-tags', { as: owner, body: { tag: 'v*', repository: 'other/*' } });
    expect(outside.json().error.fields).toEqual([{ field: 'repository', message: 'must start with team/' }]);
    expect((await api(app, 'POST', '/projects/team/immutable-tags', { as: owner, body: { tag: 'bad tag' } })).statusCode).toBe(400);
    expect((await api(app, 'POST', '/projects/nope/immutable-tags', { as: ADMIN, body: { tag: 'v*' } })).statusCode).toBe(404);
    const rule = await apiOk(app, 'POST', '/projects/team/immutable-tags', { as: owner, body: { tag: 'v*' } });
    expect(rule).toMatchObject({ repository: 'team/*', tag: 'v*', createdBy: 'owner' });
    ruleId = rule.id;
    await apiOk(app, 'POST', '/projects/team/immutable-tags', { as: owner, body: { tag: 'release-?', repository: 'team/lib' } });
    const list = await apiOk(app, 'GET', '/projects/team/immutable-tags', { as: dev });
    expect(list.items.map((r: { tag: string }) => r.tag)).toEqual(['v*', 'release-?']);
  });

  it('refuse moving or deleting an existing matching tag through /v2, naming the rule', async () => {
    const v1 = await app.pushImage('team/app', 'v1');
    // Pushing the same digest again is no move.
    expect((await app.putManifest('team/app', 'v1', v1.manifest)).statusCode).toBe(201);
    const other = await app.pushImage('team/app', 'latest');
    const moved = await app.putManifest('team/app', 'v1', other.manifest);
    expect(ociError(moved, 403, 'DENIED').message).toContain(`rule #${ruleId} team/*:v*`);
    expect(ociError(await app.delete('/v2/team/app/manifests/v1'), 403, 'DENIED').message).toContain('immutable');
    expect(ociError(await app.delete(`/v2/team/app/manifests/${v1.digest}`), 403, 'DENIED').detail).toMatchObject({ tag: 'v1', digest: v1.digest });
    const current = await app.get('/v2/team/app/manifests/v1', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    expect(current.headers['docker-content-digest']).toBe(v1.digest);
    // Tags the rules do not cover move freely.
    await app.pushImage('team/app', 'latest');
    await app.pushImage('team/lib', 'release-10');
    await app.pushImage('team/lib', 'release-10');
    await app.pushImage('team/lib', 'release-1');
    const lib = await app.pushImage('team/lib', 'other');
    expect(ociError(await app.putManifest('team/lib', 'release-1', lib.manifest), 403, 'DENIED').message).toContain('team/lib:release-?');
  });

  it('let exactly one of several concurrent first pushes of a covered tag win', async () => {
    const images = [];
    for (let i = 0; i < 4; i++) images.push(await app.pushImage('team/app', `candidate-${i}`));
    const responses = await Promise.all(images.map((image) => app.putManifest('team/app', 'v9', image.manifest)));
    expect(responses.map((r) => r.statusCode).sort()).toEqual([201, 403, 403, 403]);
    const winner = images[responses.findIndex((r) => r.statusCode === 201)]!;
    const current = await app.get('/v2/team/app/manifests/v9', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    expect(current.headers['docker-content-digest']).toBe(winner.digest);
  });

  it('are listed in the OpenAPI document', async () => {
    const doc = (await app.get('/api/v1/openapi.json')).json();
    for (const path of ['/api/v1/projects/{name}/immutable-tags', '/api/v1/projects/{name}/immutable-tags/{id}', '/api/v1/projects/{name}/lifecycle', '/api/v1/repositories/{repository}/-/tags/{tag}/history', '/api/v1/repositories/{repository}/-/tags/{tag}/rollback', '/api/v1/repositories/{repository}/-/diff', '/api/v1/gc/preview']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
  });

  it('refuse deletion through the API and rollback, and audit every refusal', async () => {
    expect((await api(app, 'DELETE', '/repositories/team/app/-/tags/v1', { as: ADMIN })).json().error.message).toContain('immutable');
    // A tag that moved before a rule covered it cannot be rolled back once one does.
    await app.pushImage('team/lib', 'beta');
    await app.pushImage('team/lib', 'beta');
    await apiOk(app, 'POST', '/projects/team/immutable-tags', { as: owner, body: { tag: 'beta' } });
    const rollback = await api(app, 'POST', '/repositories/team/lib/-/tags/beta/rollback', { as: dev, body: {} });
    expect(rollback.statusCode).toBe(403);
    expect(rollback.json().error.message).toContain('team/*:beta');
    const audit = await apiOk(app, 'GET', '/audit?action=tag.immutable&page_size=50', { as: ADMIN });
    expect(audit.items.length).toBeGreaterThanOrEqual(5);
    expect(audit.items.every((e: { result: string }) => e.result === 'denied')).toBe(true);
    expect(audit.items.map((e: { target: string }) => e.target)).toEqual(expect.arrayContaining(['team/app:v1', 'team/lib:release-1', 'team/lib:beta']));
  });

  it('stop applying once removed (owners only)', async () => {
    expect((await api(app, 'DELETE', `/projects/team/immutable-tags/${ruleId}`, { as: dev })).statusCode).toBe(403);
    await apiOk(app, 'DELETE', `/projects/team/immutable-tags/${ruleId}`, { as: owner });
    expect((await api(app, 'DELETE', `/projects/team/immutable-tags/${ruleId}`, { as: owner })).statusCode).toBe(404);
    expect((await app.delete('/v2/team/app/manifests/v1')).statusCode).toBe(202);
  });
});
