// Quotas through the management API and /v2: owners set them, pushes beyond them are refused
// with 403 DENIED "quota exceeded: used X of Y" (uploads, chunked uploads, mounts, new
// repositories), usage counts a blob once per project and drops when blobs are unlinked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, addProject, addUser, api, apiOk, authorizeRegistryRequests, createAuthApp, tokenFor, type Creds } from '../support/auth.js';
import { configBlob, descriptorOf, ociError, ociManifest, sha256, withQuery, location, type TestApp } from '../support/http-app.js';

let app: TestApp;
let owner: Creds;
let dev: Creds;

beforeAll(async () => {
  app = await createAuthApp();
  owner = await addUser(app, 'owner');
  dev = await addUser(app, 'dev');
  await addProject(app, 'team', { members: { owner: 'owner', dev: 'developer' } });
  await addProject(app, 'side');
  const repos = ['team/app', 'team/lib', 'team/new', 'side/src'];
  authorizeRegistryRequests(app, await tokenFor(app, ADMIN, repos.map((r) => `repository:${r}:pull,push,delete`)));
});

afterAll(async () => app?.cleanup());

const layer = (seed: number, size = 1000) => Buffer.alloc(size, seed);

describe('project quotas', () => {
  it('are read by members and set by owners, with validated input', async () => {
    expect(await apiOk(app, 'GET', '/projects/team/quota', { as: dev })).toEqual({
      project: 'team',
      quota: { bytes: null, repositories: null },
      usage: { bytes: 0, blobs: 0, repositories: 0 },
    });
    expect((await api(app, 'PUT', '/projects/team/quota', { as: dev, body: { bytes: 10 } })).statusCode).toBe(403);
    const bad = await api(app, 'PUT', '/projects/team/quota', { as: owner, body: { bytes: 'lots' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.fields[0].field).toBe('bytes');
    expect((await api(app, 'PUT', '/projects/team/quota', { as: owner, body: { repositories: 0 } })).statusCode).toBe(400);
    expect((await api(app, 'PUT', '/projects/team/quota', { as: owner, body: { bytes: 1, extra: 1 } })).statusCode).toBe(400);
    expect((await api(app, 'PUT', '/projects/nope/quota', { as: ADMIN, body: { bytes: 1 } })).statusCode).toBe(404);
    expect((await api(app, 'GET', '/projects/side/quota', { as: dev })).statusCode).toBe(404); // private, not a member
    const set = await apiOk(app, 'PUT', '/projects/team/quota', { as: owner, body: { bytes: '3KiB', repositories: 2 }, status: 200 });
    expect(set.quota).toEqual({ bytes: 3072, repositories: 2 });
    const audit = await apiOk(app, 'GET', '/audit?action=project.quota', { as: ADMIN });
    expect(audit.items[0]).toMatchObject({ actor: 'owner', target: 'team', detail: { bytes: 3072, repositories: 2 } });
  });

  it('refuse uploads, chunked uploads and mounts beyond the quota with 403 DENIED, before linking', async () => {
    const config = configBlob('q');
    await app.pushBlob('team/app', config);
    await app.pushBlob('team/app', layer(1));
    await app.pushBlob('team/lib', layer(1)); // the same blob in a second repository counts once
    await app.pushBlob('team/app', layer(2));
    const used = config.length + 2000;
    expect((await apiOk(app, 'GET', '/projects/team/usage', { as: dev })).usage).toEqual({ bytes: used, blobs: 3, repositories: 2 });

    const big = layer(3, 1500);
    const monolithic = await app.post(`/v2/team/app/blobs/uploads/?digest=${sha256(big)}`, big, { 'content-type': 'application/octet-stream' });
    const error = ociError(monolithic, 403, 'DENIED');
    expect(error.message).toMatch(refusal(used, 3072));
    expect(error.detail).toEqual({ project: 'team', kind: 'bytes', used, limit: 3072, adding: 1500 });
    expect((await app.head(`/v2/team/app/blobs/${sha256(big)}`)).statusCode).toBe(404);
    expect(await app.app.blobStore.stat(sha256(big))).toBeNull(); // refused before its bytes were written

    const session = await app.startUpload('team/app');
    const patched = await app.patch(session, big, { 'content-range': `0-${big.length - 1}` });
    const completed = await app.put(withQuery(location(patched), { digest: sha256(big) }));
    expect(ociError(completed, 403, 'DENIED').message).toMatch(refusal(used, 3072));
    expect(await app.app.blobStore.stat(sha256(big))).toBeNull();

    await app.pushBlob('side/src', big);
    const mounted = await app.post(`/v2/team/app/blobs/uploads/?mount=${sha256(big)}&from=side/src`);
    expect(ociError(mounted, 403, 'DENIED').message).toMatch(refusal(used, 3072));
    expect((await app.head(`/v2/team/app/blobs/${sha256(big)}`)).statusCode).toBe(404);
    const refusals = await apiOk(app, 'GET', '/audit?action=quota.exceeded&result=denied', { as: ADMIN });
    // Three refusals; the monolithic POST's and the mount's are identical, so they share an entry.
    expect(refusals.items.reduce((sum: number, e: { count: number }) => sum + e.count, 0)).toBe(3);
    expect(refusals.items[0]).toMatchObject({ target: 'team/app', project: 'team', detail: { kind: 'bytes', used, limit: 3072, adding: 1500 } });
  });

  it('limit the repository count, also for a manifest push, and free space when blobs are deleted', async () => {
    const refused = await app.post(`/v2/team/new/blobs/uploads/?digest=${sha256(layer(9, 10))}`, layer(9, 10), { 'content-type': 'application/octet-stream' });
    expect(ociError(refused, 403, 'DENIED').message).toMatch(/^quota exceeded: used 2 of 2 repositories in project team/);

    // Deleting a blob (no manifest uses it) lowers usage at once; then the big one fits.
    expect((await app.delete(`/v2/team/app/blobs/${sha256(layer(2))}`)).statusCode).toBe(202);
    const before = (await apiOk(app, 'GET', '/projects/team/usage', { as: dev })).usage.bytes;
    const big = layer(3, 1500);
    await app.pushBlob('team/app', big);
    expect((await apiOk(app, 'GET', '/projects/team/usage', { as: dev })).usage.bytes).toBe(before + 1500);

    // An image whose blobs are all in: its manifest is stored; lowering the quota below usage
    // refuses new manifests (tagging a stored one again still works).
    const config = configBlob('q');
    const manifest = ociManifest({ config: descriptorOf('application/vnd.oci.image.config.v1+json', config), layers: [descriptorOf('application/vnd.oci.image.layer.v1.tar', big)] });
    await app.pushManifest('team/app', 'v1', manifest);
    await apiOk(app, 'PUT', '/projects/team/quota', { as: owner, body: { bytes: 100 }, status: 200 });
    const other = ociManifest({ config: descriptorOf('application/vnd.oci.image.config.v1+json', config), layers: [descriptorOf('application/vnd.oci.image.layer.v1.tar', layer(1))] });
    expect(ociError(await app.putManifest('team/app', 'v2', other), 403, 'DENIED').message).toMatch(/^quota exceeded: used \d+ of 100 bytes/);
    await app.pushManifest('team/app', 'again', manifest);
  });

  it('are in the OpenAPI document, with retention', async () => {
    const paths = Object.keys((await app.get('/api/v1/openapi.json')).json().paths);
    for (const path of ['/projects/{name}/quota', '/projects/{name}/usage', '/usage', '/projects/{name}/retention', '/projects/{name}/retention/run']) expect(paths).toContain(`/api/v1${path}`);
  });

  it('list every project for administrators only', async () => {
    expect((await api(app, 'GET', '/usage', { as: owner })).statusCode).toBe(403);
    const all = await apiOk(app, 'GET', '/usage', { as: ADMIN });
    expect(all.items.map((i: { project: string }) => i.project)).toEqual(['side', 'team']);
    expect(all.items[0].usage).toEqual({ bytes: 1500, blobs: 1, repositories: 1 });
  });
});

/** The refusal message's start: "quota exceeded: used X of Y bytes". */
function refusal(used: number, limit: number): RegExp {
  return new RegExp(`^quota exceeded: used ${used} of ${limit} bytes in project team`);
}
