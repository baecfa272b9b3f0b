// Who moved a tag and on which node: recorded in each tag-history row by the /v2 push, the API
// tag delete and the rollback, shown by the history API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, addProject, addUser, apiOk, authorizeRegistryRequests, createAuthApp, tokenFor, type Creds } from '../support/auth.js';
import type { TestApp } from '../support/http-app.js';

let app: TestApp;
let dev: Creds;
const repo = 'team/app';

beforeAll(async () => {
  app = await createAuthApp({ flags: { 'node.name': 'node-a' } });
  dev = await addUser(app, 'dev');
  await addProject(app, 'team', { members: { dev: 'developer' } });
  authorizeRegistryRequests(app, await tokenFor(app, dev, [`repository:${repo}:pull,push`]));
});

afterAll(async () => {
  await app?.cleanup();
});

describe('tag history: who and which node', () => {
  it('records the pusher, the rollback and the deleter with their kind, address and node', async () => {
    const first = await app.pushImage(repo, 'rel');
    const second = await app.pushImage(repo, 'rel');
    await apiOk(app, 'POST', `/repositories/${repo}/-/tags/rel/rollback`, { as: dev, body: {}, status: 200 });
    await apiOk(app, 'DELETE', `/repositories/${repo}/-/tags/rel`, { as: ADMIN });
    const history = await apiOk(app, 'GET', `/repositories/${repo}/-/tags/rel/history`, { as: dev });
    expect(history.items.map((i: any) => [i.previousDigest, i.digest, i.by?.actor, i.by?.actorKind, i.by?.node])).toEqual([
      [first.digest, null, 'admin', 'user', 'node-a'],
      [second.digest, first.digest, 'dev', 'user', 'node-a'],
      [first.digest, second.digest, 'dev', 'user', 'node-a'],
      [null, first.digest, 'dev', 'user', 'node-a'],
    ]);
    expect(history.items.every((i: any) => i.by.address === '127.0.0.1')).toBe(true);
  });
});
