// Garbage collection dry run: exactly the blobs that no manifest references, past the grace
// period; administrators only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, authorizeRegistryRequests, addProject, addUser, api, apiOk, createAuthApp, sqlite, tokenFor } from '../support/auth.js';
import { sha256, type TestApp } from '../support/http-app.js';

let app: TestApp;

beforeAll(async () => {
  app = await createAuthApp();
  await addProject(app, 'team');
  const token = await tokenFor(app, ADMIN, ['repository:team/app:pull,push,delete']);
  authorizeRegistryRequests(app, token);
});

afterAll(async () => {
  await app?.cleanup();
});

describe('GET /api/v1/gc/preview', () => {
  it('lists exactly the unreferenced blobs past the grace period', async () => {
    const kept = await app.pushImage('team/app', 'v1');
    const gone = await app.pushImage('team/app', 'v2', { layers: [Buffer.from('only in v2')] });
    const loose = Buffer.from('pushed, never used');
    await app.pushBlob('team/app', loose);
    expect((await app.delete(`/v2/team/app/manifests/${gone.digest}`)).statusCode).toBe(202);

    // Everything is inside the default 24 h grace period.
    expect(await apiOk(app, 'GET', '/gc/preview', { as: ADMIN })).toMatchObject({ count: 0, bytes: 0, blobs: [] });

    // Two hours later, with a one-hour grace period: v2's config and layer, and the loose blob.
    sqlite(app, 'update blobs set seen_at = seen_at - 7200000');
    const preview = await apiOk(app, 'GET', '/gc/preview?grace=1h', { as: ADMIN });
    const expected = [gone.config, gone.layers[0]!, loose].map((b) => sha256(b)).sort();
    expect(preview.blobs.map((b: { digest: string }) => b.digest)).toEqual(expected);
    expect(preview.count).toBe(3);
    expect(preview.bytes).toBe(gone.config.length + gone.layers[0]!.length + loose.length);
    expect(preview.truncated).toBe(false);
    expect(preview.graceMs).toBe(3_600_000);
    for (const blob of [kept.config, ...kept.layers]) expect(expected).not.toContain(sha256(blob));

    // Pushing a blob again renews the time the grace period counts from.
    await app.pushBlob('team/app', loose);
    expect((await apiOk(app, 'GET', '/gc/preview?grace=1h', { as: ADMIN })).count).toBe(2);
  });

  it('is for administrators, with a validated grace period', async () => {
    const alice = await addUser(app, 'alice');
    expect((await api(app, 'GET', '/gc/preview', { as: alice })).statusCode).toBe(403);
    expect((await api(app, 'GET', '/gc/preview')).statusCode).toBe(401);
    expect((await api(app, 'GET', '/gc/preview?grace=1s', { as: ADMIN })).json().error.fields).toEqual([{ field: 'grace', message: 'at least 1m' }]);
    expect((await api(app, 'GET', '/gc/preview?project=A*', { as: ADMIN })).statusCode).toBe(400);
    expect((await api(app, 'GET', '/gc/preview?grace=soon', { as: ADMIN })).statusCode).toBe(400);
  });
});
