// The management API: validation errors naming the field, pagination, users, projects, robots,
// personal access tokens, web sessions with CSRF protection, the OpenAPI document, rate limits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/http-app.js';
import { ADMIN, addProject, addUser, api, apiOk, bearer, createAuthApp, grantedScopes, requestToken, tokenFor, type Creds } from '../support/auth.js';

let app: TestApp;
let alice: Creds;

beforeAll(async () => {
  app = await createAuthApp();
  alice = await addUser(app, 'alice', { email: 'alice@example.com' });
  await addProject(app, 'team', { members: { alice: 'owner' } });
});

afterAll(async () => {
  await app?.cleanup();
});

function fields(body: { error: { fields?: { field: string }[] } }): string[] {
  return (body.error.fields ?? []).map((f) => f.field);
}

describe('validation', () => {
  it('names each offending field of the body and the query', async () => {
    const bad = await api(app, 'POST', '/users', { as: ADMIN, body: { name: 'Not Valid!', password: 'short', email: 'nope', extra: 1 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('INVALID');
    expect(fields(bad.json()).sort()).toEqual(['(body)', 'email', 'name', 'password']);
    expect(bad.json().error.message).toContain('password: at least 8 characters');

    const query = await api(app, 'GET', '/users?page=0&page_size=1000&sort=x', { as: ADMIN });
    expect(query.statusCode).toBe(400);
    expect(fields(query.json()).sort()).toEqual(['query', 'query.page', 'query.page_size']);

    const robot = await api(app, 'POST', '/robots', { as: alice, body: { name: 'ci', project: 'team', permissions: ['repository:team/**:pull', 'repository:*:fly'] } });
    expect(robot.statusCode).toBe(400);
    expect(fields(robot.json())).toEqual(['permissions.1']);
    const outside = await api(app, 'POST', '/robots', { as: alice, body: { name: 'ci', project: 'team', permissions: ['repository:other/**:pull'] } });
    expect(outside.statusCode).toBe(400);
    expect(fields(outside.json())).toEqual(['permissions.0']);

    const member = await api(app, 'PUT', '/projects/team/members/alice', { as: ADMIN, body: { role: 'emperor' } });
    expect(fields(member.json())).toEqual(['role']);
    const token = await api(app, 'POST', '/tokens', { as: alice, body: { name: 'x', scopes: [], expiresIn: '900d' } });
    expect(fields(token.json()).sort()).toEqual(['expiresIn', 'scopes']);

    const json = await app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN.password}`).toString('base64')}`, 'content-type': 'application/json' }, payload: '{"name":' });
    expect(json.statusCode).toBe(400);
    expect(json.json().error.code).toBe('INVALID');
  });

  it('answers unknown endpoints with 404 and wrong methods with 405', async () => {
    expect((await api(app, 'GET', '/nothing', { as: ADMIN })).json().error.code).toBe('NOT_FOUND');
    const wrong = await api(app, 'PATCH', '/users', { as: ADMIN, body: {} });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.headers.allow).toBe('GET, POST');
  });

  it('serves an OpenAPI 3 document of every endpoint', async () => {
    const response = await app.get('/api/v1/openapi.json');
    expect(response.statusCode).toBe(200);
    const doc = response.json();
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of ['/api/v1/users', '/api/v1/projects/{name}/members/{user}', '/api/v1/robots', '/api/v1/tokens', '/api/v1/repositories/{repository}/-/tags', '/api/v1/audit', '/api/v1/session']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.paths['/api/v1/users'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('name');
    expect(doc.paths['/api/v1/audit'].get.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['actor', 'project', 'action', 'from', 'to', 'page', 'page_size']));
  });
});

describe('users', () => {
  it('are created (with a generated password when none is given), listed with paging and a total, disabled and deleted', async () => {
    const created = await apiOk(app, 'POST', '/users', { as: ADMIN, body: { name: 'gen' } });
    expect(created.password).toMatch(/^[\w-]{24}$/);
    expect(created.user).toMatchObject({ name: 'gen', admin: false, disabled: false });
    expect(created.user).not.toHaveProperty('passwordHash');
    expect((await requestToken(app, { username: 'gen', password: created.password }, [])).statusCode).toBe(200);
    expect((await api(app, 'POST', '/users', { as: ADMIN, body: { name: 'gen' } })).statusCode).toBe(409);

    for (const name of ['u1', 'u2', 'u3']) await apiOk(app, 'POST', '/users', { as: ADMIN, body: { name, password: 'password-123' } });
    const pageTwo = await apiOk(app, 'GET', '/users?query=u&page=2&page_size=2', { as: ADMIN });
    expect(pageTwo).toMatchObject({ total: 3, page: 2, page_size: 2 });
    expect(pageTwo.items.map((u: { name: string }) => u.name)).toEqual(['u3']);

    await apiOk(app, 'PATCH', '/users/u1', { as: ADMIN, body: { disabled: true } });
    expect((await apiOk(app, 'GET', '/users?disabled=true', { as: ADMIN })).items.map((u: { name: string }) => u.name)).toEqual(['u1']);
    expect((await requestToken(app, { username: 'u1', password: 'password-123' }, [])).statusCode).toBe(401);
    await apiOk(app, 'DELETE', '/users/u2', { as: ADMIN });
    expect((await api(app, 'GET', '/users/u2', { as: ADMIN })).statusCode).toBe(404);
    // Admins do not lock themselves out.
    expect((await api(app, 'PATCH', '/users/admin', { as: ADMIN, body: { disabled: true } })).statusCode).toBe(403);
    expect((await api(app, 'DELETE', '/users/admin', { as: ADMIN })).statusCode).toBe(403);
  });

  it('see themselves, not others; change their own password with the current one', async () => {
    expect((await apiOk(app, 'GET', '/users/alice', { as: alice })).email).toBe('alice@example.com');
    expect((await api(app, 'GET', '/users/admin', { as: alice })).statusCode).toBe(403);
    const wrong = await api(app, 'PUT', '/users/alice/password', { as: alice, body: { password: 'a-new-password', currentPassword: 'wrong' } });
    expect(wrong.statusCode).toBe(400);
    expect(fields(wrong.json())).toEqual(['currentPassword']);
    const before = await tokenFor(app, alice, ['repository:team/app:pull']);
    await apiOk(app, 'PUT', '/users/alice/password', { as: alice, body: { password: 'a-new-password', currentPassword: alice.password } });
    alice = { username: 'alice', password: 'a-new-password' };
    // Tokens issued before the change are void; the new password works.
    expect((await app.get('/v2/team/app/tags/list', bearer(before))).statusCode).toBe(401);
    expect((await requestToken(app, alice, [])).statusCode).toBe(200);
    expect((await api(app, 'PUT', '/users/admin/password', { as: alice, body: { password: 'x-password-1' } })).statusCode).toBe(403);
  });
});

describe('projects, members and repositories', () => {
  it('delete a project only when empty, or with force', async () => {
    await apiOk(app, 'POST', '/projects', { as: ADMIN, body: { name: 'doomed', public: true } });
    const push = await tokenFor(app, ADMIN, ['repository:doomed/app:pull,push']);
    expect((await app.post('/v2/doomed/app/blobs/uploads/?digest=sha256:' + 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', Buffer.alloc(0), bearer(push))).statusCode).toBe(201);
    const refused = await api(app, 'DELETE', '/projects/doomed', { as: ADMIN });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error.message).toMatch(/force/);
    expect((await apiOk(app, 'GET', '/repositories?project=doomed', { as: ADMIN })).total).toBe(1);
    await apiOk(app, 'DELETE', '/projects/doomed?force=true', { as: ADMIN });
    expect((await apiOk(app, 'GET', '/repositories?project=doomed', { as: ADMIN })).total).toBe(0);
    expect((await api(app, 'GET', '/projects/doomed', { as: ADMIN })).statusCode).toBe(404);
  });

  it('lists repositories with search and tags with digest, size and push time', async () => {
    const push = bearer(await tokenFor(app, alice, ['repository:team/web:pull,push', 'repository:team/api:pull,push']));
    const proxy = new Proxy(app, {
      get: (target, prop) =>
        prop === 'inject' ? (options: Parameters<TestApp['inject']>[0]) => target.inject({ ...options, headers: { ...push, ...options.headers } }) : Reflect.get(target, prop),
    });
    const image = await proxy.pushImage('team/web', 'v1', { layers: [Buffer.alloc(1000, 1)] });
    await proxy.pushImage('team/api', 'v1');
    const repos = await apiOk(app, 'GET', '/repositories?query=we', { as: alice });
    expect(repos.items).toMatchObject([{ name: 'team/web', tags: 1, manifests: 1 }]);
    const tags = await apiOk(app, 'GET', '/repositories/team/web/-/tags', { as: alice });
    expect(tags.items).toEqual([
      { name: 'v1', digest: image.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: image.manifest.length + image.config.length + 1000, pushedAt: expect.any(String), pulls: 0, lastPulledAt: null, manifestPulls: 0, manifestLastPulledAt: null },
    ]);
    await apiOk(app, 'DELETE', '/repositories/team/api', { as: alice });
    expect((await api(app, 'GET', '/repositories/team/api', { as: alice })).statusCode).toBe(404);
    expect((await apiOk(app, 'GET', '/audit?action=repository.delete', { as: ADMIN })).items[0]).toMatchObject({ actor: 'alice', target: 'team/api', project: 'team' });
  });
});

describe('robot accounts and personal access tokens', () => {
  it('robots log in with their secret, get only their permissions, and can expire', async () => {
    const created = await apiOk(app, 'POST', '/robots', { as: alice, body: { name: 'deploy', project: 'team', permissions: ['repository:team/web:pull'], description: 'deploys' } });
    expect(created.robot).toMatchObject({ name: 'robot$team+deploy', project: 'team', permissions: ['repository:team/web:pull'], createdBy: 'alice', expiresAt: null });
    expect(created.secret).toMatch(/^stw_robot_/);
    const robot = { username: created.robot.name, password: created.secret };
    expect(grantedScopes(await tokenFor(app, robot, ['repository:team/web:pull,push', 'repository:team/api:pull']))).toEqual(['repository:team/web:pull']);
    expect((await api(app, 'POST', '/robots', { as: alice, body: { name: 'deploy', project: 'team', permissions: ['repository:team/web:pull'] } })).statusCode).toBe(409);
    expect((await api(app, 'POST', '/robots', { as: alice, body: { name: 'sys', permissions: ['repository:**:pull'] } })).statusCode).toBe(403);
    const system = await apiOk(app, 'POST', '/robots', { as: ADMIN, body: { name: 'mirror', permissions: ['repository:**:pull'], expiresIn: '30d' } });
    expect(system.robot.name).toBe('robot$mirror');
    expect(Date.parse(system.robot.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect((await apiOk(app, 'GET', '/robots?system=true', { as: ADMIN })).items.map((r: { name: string }) => r.name)).toEqual(['robot$mirror']);
    expect((await apiOk(app, 'GET', '/robots?project=team', { as: alice })).items.map((r: { name: string }) => r.name)).toEqual(['robot$team+deploy']);
    expect((await api(app, 'GET', '/robots', { as: alice })).statusCode).toBe(403);
    expect((await apiOk(app, 'GET', '/audit?action=robot.create&project=team', { as: alice })).items[0]).toMatchObject({ actor: 'alice', target: 'robot$team+deploy' });
  });

  it('personal access tokens are scoped, listed without their secret, and usable as the password', async () => {
    const created = await apiOk(app, 'POST', '/tokens', { as: alice, body: { name: 'laptop', scopes: ['api', 'repository:team/web:pull'], expiresIn: '7d' } });
    expect(created.secret).toMatch(/^stw_pat_/);
    const pat = { username: 'alice', password: created.secret as string };
    const listed = await apiOk(app, 'GET', '/tokens', { as: alice });
    expect(listed.items[0]).toMatchObject({ id: created.token.id, name: 'laptop', scopes: ['api', 'repository:team/web:pull'], revokedAt: null });
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    // As the password: for tokens (limited by its scopes) and the API (with the api scope).
    expect(grantedScopes(await tokenFor(app, pat, ['repository:team/web:pull,push']))).toEqual(['repository:team/web:pull']);
    expect((await apiOk(app, 'GET', '/projects/team', { as: pat })).name).toBe('team');
    expect((await apiOk(app, 'GET', '/tokens', { as: pat })).items[0].lastUsedAt).not.toBeNull();
    // A token never makes tokens (a limited one could otherwise make an unlimited one).
    expect((await api(app, 'POST', '/tokens', { as: pat, body: { name: 'more', scopes: ['api'] } })).statusCode).toBe(403);
    // Only with its own user's name.
    expect((await requestToken(app, { username: 'admin', password: created.secret }, [])).statusCode).toBe(401);
    // Others cannot see or revoke it; its owner can.
    expect((await api(app, 'DELETE', `/tokens/${created.token.id}`, { as: await addUser(app, 'mallory') })).statusCode).toBe(404);
    await apiOk(app, 'DELETE', `/tokens/${created.token.id}`, { as: alice });
    expect((await api(app, 'GET', '/projects/team', { as: pat })).statusCode).toBe(401);
    expect((await api(app, 'DELETE', `/tokens/${created.token.id}`, { as: alice })).statusCode).toBe(409);
    expect((await apiOk(app, 'GET', '/tokens?user=alice', { as: ADMIN })).items[0].revokedAt).not.toBeNull();
  });
});

describe('web sessions', () => {
  it('log in with an HTTP-only SameSite cookie; changes need the CSRF token; log out', async () => {
    const login = await app.inject({ method: 'POST', url: '/api/v1/session', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(alice) });
    expect(login.statusCode, login.body).toBe(200);
    const setCookie = login.headers['set-cookie'] as string;
    expect(setCookie).toMatch(/^stowage_session=stw_session_[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    const cookie = setCookie.split(';')[0]!;
    const { csrfToken, user } = login.json();
    expect(user.name).toBe('alice');

    const session = await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } });
    expect(session.json()).toMatchObject({ user: { name: 'alice' }, csrfToken });
    expect((await app.inject({ method: 'GET', url: '/api/v1/projects/team', headers: { cookie } })).statusCode).toBe(200);

    const change = { method: 'PATCH' as const, url: '/api/v1/projects/team', payload: JSON.stringify({ public: false }) };
    const noCsrf = await app.inject({ ...change, headers: { cookie, 'content-type': 'application/json' } });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json().error.message).toMatch(/CSRF/);
    expect((await app.inject({ ...change, headers: { cookie, 'content-type': 'application/json', 'x-csrf-token': 'forged' } })).statusCode).toBe(403);
    expect((await app.inject({ ...change, headers: { cookie, 'content-type': 'application/json', 'x-csrf-token': csrfToken } })).statusCode).toBe(200);

    const logout = await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, 'x-csrf-token': csrfToken } });
    expect(logout.statusCode).toBe(204);
    expect(logout.headers['set-cookie']).toContain('Max-Age=0');
    expect((await app.inject({ method: 'GET', url: '/api/v1/projects/team', headers: { cookie } })).statusCode).toBe(401);

    const wrong = await app.inject({ method: 'POST', url: '/api/v1/session', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ username: 'alice', password: 'nope' }) });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
  });
});

describe('failed logins', () => {
  it('are limited per user (429 with Retry-After, before the password is checked), logged and audited', async () => {
    const limited = await createAuthApp({ flags: {}, env: {} });
    try {
      const bob = await addUser(limited, 'bob');
      for (let i = 0; i < 10; i++) expect((await requestToken(limited, { username: 'bob', password: `guess-${i}` }, [])).statusCode).toBe(401);
      const blocked = await requestToken(limited, { username: 'bob', password: 'guess-x' }, []);
      expect(blocked.statusCode).toBe(429);
      expect(blocked.json().errors[0].code).toBe('TOO_MANY_REQUESTS');
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(800);
      // Even the right password is refused while blocked, everywhere.
      expect((await requestToken(limited, bob, [])).statusCode).toBe(429);
      expect((await api(limited, 'GET', '/projects', { as: bob })).statusCode).toBe(429);
      const form = await limited.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `grant_type=password&username=bob&password=${bob.password}` });
      expect(form.statusCode).toBe(429);
      expect(form.headers['retry-after']).toBeDefined();
      // Other users are not affected by bob's lock.
      expect((await requestToken(limited, ADMIN, [])).statusCode).toBe(200);
      const audit = await apiOk(limited, 'GET', '/audit?actor=bob&action=login', { as: ADMIN });
      // Ten failures, each counted (identical ones of one batch share an entry and its count).
      const failures = audit.items.filter((e: { result: string }) => e.result === 'failure') as { count: number; detail: { reason: string } }[];
      expect(failures.reduce((sum, e) => sum + e.count, 0)).toBe(10);
      expect(failures.every((e) => e.detail.reason === 'wrong password')).toBe(true);
      expect(audit.items.some((e: { result: string; detail: { reason: string } }) => e.result === 'denied' && e.detail.reason === 'rate limited')).toBe(true);
      expect(JSON.stringify(audit)).not.toContain('guess-');
    } finally {
      await limited.cleanup();
    }
  });

  it('count the forwarded client address only behind a trusted proxy', async () => {
    const proxied = await createAuthApp({ flags: { trustedProxies: '127.0.0.1', 'auth.loginFailures.perAddress': '3' } });
    const direct = await createAuthApp({ flags: { 'auth.loginFailures.perAddress': '3' } });
    try {
      const attempt = (target: TestApp, user: string, from: string) =>
        target.inject({ method: 'GET', url: '/auth/token?service=stowage', headers: { authorization: `Basic ${Buffer.from(`${user}:wrong-password`).toString('base64')}`, 'x-forwarded-for': from } });
      // Behind the proxy: each client address has its own counter.
      for (let i = 0; i < 3; i++) expect((await attempt(proxied, `p${i}`, '10.0.0.1')).statusCode).toBe(401);
      expect((await attempt(proxied, 'p9', '10.0.0.1')).statusCode).toBe(429);
      expect((await attempt(proxied, 'p9', '10.0.0.2')).statusCode).toBe(401);
      const audit = await apiOk(proxied, 'GET', '/audit?action=login&actor=p0', { as: ADMIN });
      expect(audit.items[0].address).toBe('10.0.0.1');
      // From an untrusted peer the header is ignored: the peer's own address counts.
      for (let i = 0; i < 3; i++) expect((await attempt(direct, `d${i}`, `10.0.1.${i}`)).statusCode).toBe(401);
      expect((await attempt(direct, 'd9', '10.0.1.99')).statusCode).toBe(429);
    } finally {
      await proxied.cleanup();
      await direct.cleanup();
    }
  });

  it('are limited per address across user names', async () => {
    const limited = await createAuthApp({ flags: { 'auth.loginFailures.perAddress': '5' } as Record<string, string> });
    try {
      for (let i = 0; i < 5; i++) expect((await requestToken(limited, { username: `nobody-${i}`, password: 'x-password' }, [])).statusCode).toBe(401);
      expect((await requestToken(limited, { username: 'someone-else', password: 'x-password' }, [])).statusCode).toBe(429);
      expect((await requestToken(limited, ADMIN, [])).statusCode).toBe(429);
      // Anonymous access needs no login and stays available.
      expect((await requestToken(limited, null, [])).statusCode).toBe(200);
    } finally {
      await limited.cleanup();
    }
  });
});
