// The Docker token flow: challenges, the token endpoint (GET and the OAuth2 POST grants), what
// tokens grant, and the attacks that must fail.
import { createPrivateKey, generateKeyPairSync, createSecretKey } from 'node:crypto';
import { SignJWT, UnsecuredJWT, base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/http-app.js';
import {
  ADMIN,
  addProject,
  addUser,
  apiOk,
  bearer,
  claimsOf,
  createAuthApp,
  grantedScopes,
  requestToken,
  signingKeyOf,
  sqlite,
  tokenFor,
  type Creds,
} from '../support/auth.js';

let app: TestApp;
let dev: Creds;
let reader: Creds;
let outsider: Creds;

beforeAll(async () => {
  app = await createAuthApp();
  dev = await addUser(app, 'dev');
  reader = await addUser(app, 'reader');
  outsider = await addUser(app, 'outsider');
  await addProject(app, 'team', { members: { dev: 'developer', reader: 'reader' } });
  await addProject(app, 'open', { public: true, members: { dev: 'developer' } });
  const push = await tokenFor(app, ADMIN, ['repository:team/app:push,pull', 'repository:open/app:push,pull', 'repository:team/other:push,pull']);
  const tokenApp = new Proxy(app, {
    get: (target, prop) =>
      prop === 'inject' ? (options: Parameters<TestApp['inject']>[0]) => target.inject({ ...options, headers: { ...bearer(push), ...options.headers } }) : Reflect.get(target, prop),
  });
  await tokenApp.pushImage('team/app', 'v1');
  await tokenApp.pushImage('team/other', 'v1');
  await tokenApp.pushImage('open/app', 'v1');
});

afterAll(async () => {
  await app?.cleanup();
});

/** A token signed by the registry's own key with these claims (for expired/forged tokens). */
async function signWithRegistryKey(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const { kid, jwk } = signingKeyOf(app);
  const key = createPrivateKey({ key: jwk as never, format: 'jwk' });
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ kind: 'user', uid: '1', access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }], ...claims })
    .setProtectedHeader({ alg: 'ES256', kid, ...header })
    .setIssuer((claims.iss as string) ?? 'stowage')
    .setSubject('admin')
    .setAudience((claims.aud as string) ?? 'stowage')
    .setIssuedAt((claims.iat as number) ?? now)
    .setExpirationTime((claims.exp as number) ?? now + 300)
    .sign(key);
}

describe('the /v2 challenge', () => {
  it('answers /v2/ without credentials with 401 and a Bearer challenge naming realm and service', async () => {
    const response = await app.get('/v2/');
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="http://localhost:80/auth/token",service="stowage"');
    expect(response.json().errors[0].code).toBe('UNAUTHORIZED');
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('names the scope a request needs: pull to read, push to write, delete to delete', async () => {
    const cases: [string, string, string][] = [
      ['GET', '/v2/team/app/manifests/v1', 'repository:team/app:pull'],
      ['HEAD', '/v2/team/app/blobs/sha256:' + 'a'.repeat(64), 'repository:team/app:pull'],
      ['POST', '/v2/team/app/blobs/uploads/', 'repository:team/app:push'],
      ['PUT', '/v2/team/app/manifests/v2', 'repository:team/app:push'],
      ['DELETE', '/v2/team/app/manifests/v1', 'repository:team/app:delete'],
      ['GET', '/v2/team/app/tags/list', 'repository:team/app:pull'],
      ['GET', `/v2/team/app/referrers/sha256:${'a'.repeat(64)}`, 'repository:team/app:pull'],
    ];
    for (const [method, url, scope] of cases) {
      const response = await app.inject({ method: method as 'GET', url });
      expect(response.statusCode, `${method} ${url}`).toBe(401);
      expect(response.headers['www-authenticate'], `${method} ${url}`).toBe(`Bearer realm="http://localhost:80/auth/token",service="stowage",scope="${scope}"`);
      if (method !== 'HEAD') expect(response.json().errors[0].detail[0]).toMatchObject({ Type: scope.split(':')[0], Name: scope.split(':')[1] });
    }
  });

  it('uses the configured realm and the forwarded host only from trusted proxies', async () => {
    const fixed = await createAuthApp({ flags: { 'auth.realm': 'https://auth.example.com/token' } });
    try {
      expect((await fixed.get('/v2/')).headers['www-authenticate']).toBe('Bearer realm="https://auth.example.com/token",service="stowage"');
    } finally {
      await fixed.cleanup();
    }
    const untrusted = await app.get('/v2/', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example.com' });
    expect(untrusted.headers['www-authenticate']).toContain('realm="http://localhost:80/auth/token"');
    expect(untrusted.headers['strict-transport-security']).toBeUndefined();
    const proxied = await createAuthApp({ flags: { trustedProxies: '127.0.0.1' } });
    try {
      const response = await proxied.get('/v2/', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' });
      expect(response.headers['www-authenticate']).toContain('realm="https://registry.example.com/auth/token"');
      // HTTPS at the proxy: HSTS here too.
      expect(response.headers['strict-transport-security']).toBe('max-age=31536000');
    } finally {
      await proxied.cleanup();
    }
  });
});

describe('the token endpoint (GET)', () => {
  it('issues a short-lived ES256 JWT with the granted part of the requested scopes', async () => {
    const response = await requestToken(app, dev, ['repository:team/app:pull,push,delete', 'repository:team/other:pull']);
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const body = response.json();
    expect(body.token).toBe(body.access_token);
    expect(body.expires_in).toBe(300);
    expect(Date.parse(body.issued_at)).toBeGreaterThan(Date.now() - 60_000);
    expect(body.refresh_token).toBeUndefined();
    const [header] = body.token.split('.');
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: expect.any(String) });
    const claims = claimsOf(body.token);
    expect(claims).toMatchObject({ iss: 'stowage', aud: 'stowage', sub: 'dev' });
    expect(claims.exp - claims.iat).toBe(300);
    // A developer may pull and push, not delete.
    expect(grantedScopes(body.token)).toEqual(['repository:team/app:pull,push', 'repository:team/other:pull']);
  });

  it('never escalates: scopes beyond the role, other projects and unknown types are left out, not an error', async () => {
    expect(grantedScopes(await tokenFor(app, reader, ['repository:team/app:pull,push,delete,*']))).toEqual(['repository:team/app:pull']);
    expect(grantedScopes(await tokenFor(app, outsider, ['repository:team/app:pull', 'repository:team/app:*']))).toEqual([]);
    expect(grantedScopes(await tokenFor(app, outsider, ['repository:open/app:pull,push']))).toEqual(['repository:open/app:pull']);
    expect(grantedScopes(await tokenFor(app, dev, ['registry:catalog:*', 'system:admin:*', 'project:team:admin', 'foo:bar:baz']))).toEqual(['registry:catalog:*']);
    expect(grantedScopes(await tokenFor(app, ADMIN, ['repository:team/app:*']))).toEqual(['repository:team/app:pull,push,delete']);
  });

  it('gives anonymous clients pull on public projects only', async () => {
    const token = await tokenFor(app, null, ['repository:open/app:pull,push,delete', 'repository:team/app:pull']);
    expect(grantedScopes(token)).toEqual(['repository:open/app:pull']);
    expect(claimsOf(token).sub).toBe('');
    expect((await app.get('/v2/open/app/manifests/v1', bearer(token))).statusCode).toBe(200);
    // Without any token too, for curl and scripts.
    expect((await app.get('/v2/open/app/manifests/v1')).statusCode).toBe(200);
    expect((await app.get('/v2/team/app/manifests/v1')).statusCode).toBe(401);
    expect((await app.inject({ method: 'DELETE', url: '/v2/open/app/manifests/v1' })).statusCode).toBe(401);
    // The catalog is open to all, listing what each may pull.
    expect((await app.get('/v2/_catalog')).json()).toEqual({ repositories: ['open/app'] });
  });

  it('takes several scopes in one parameter and names with a registry host and port', async () => {
    const token = await tokenFor(app, dev, ['repository:team/app:pull repository:team/other:pull']);
    expect(grantedScopes(token)).toEqual(['repository:team/app:pull', 'repository:team/other:pull']);
    // A host:port in the name: the first and last colons delimit it.
    expect(grantedScopes(await tokenFor(app, dev, ['repository:localhost:5000/team/app:pull']))).toEqual([]);
    expect(grantedScopes(await tokenFor(app, dev, ['repository(plugin):team/app:pull']))).toEqual(['repository:team/app:pull']);
  });

  it('answers wrong credentials with 401, the same for unknown users, and refuses bad requests', async () => {
    const wrong = await requestToken(app, { username: 'dev', password: 'nope-nope' }, []);
    const unknown = await requestToken(app, { username: 'nobody', password: 'nope-nope' }, []);
    for (const response of [wrong, unknown]) {
      expect(response.statusCode).toBe(401);
      expect(response.json().errors[0]).toMatchObject({ code: 'UNAUTHORIZED', message: 'invalid username or password' });
    }
    expect(wrong.body).toBe(unknown.body);
    expect((await requestToken(app, dev, ['repository:team/app'])).statusCode).toBe(400);
    expect((await requestToken(app, dev, ['repository::pull'])).statusCode).toBe(400);
    expect((await app.get('/auth/token?service=other')).statusCode).toBe(400);
    expect((await app.get('/auth/token', { authorization: 'Bearer abc' })).statusCode).toBe(401);
  });

  it('verifies a password once a minute for repeated token requests, and a wrong one every time', async () => {
    const auditOf = async (result: string) => {
      const entries = (await apiOk(app, 'GET', `/audit?actor=outsider&action=login&result=${result}`, { as: ADMIN })).items as { count: number; detail: { method: string } }[];
      return entries.filter((e) => e.detail.method === 'token').reduce((sum, e) => sum + e.count, 0);
    };
    const before = await auditOf('success');
    for (let i = 0; i < 5; i++) expect((await requestToken(app, outsider, ['repository:open/app:pull'])).statusCode).toBe(200);
    // One verification (and one login in the audit log) for the five requests.
    expect((await auditOf('success')) - before).toBeLessThanOrEqual(1);
    const failures = await auditOf('failure');
    for (let i = 0; i < 3; i++) expect((await requestToken(app, { ...outsider, password: `${outsider.password}-wrong` }, [])).statusCode).toBe(401);
    expect((await auditOf('failure')) - failures).toBe(3);
  });

  it('verifies a password once for token requests that arrive together, and each wrong one by itself', async () => {
    const burst = await addUser(app, 'burst');
    const auditOf = async (result: string) => {
      const entries = (await apiOk(app, 'GET', `/audit?actor=burst&action=login&result=${result}`, { as: ADMIN })).items as { count: number; detail: { method: string } }[];
      return entries.filter((e) => e.detail.method === 'token').reduce((sum, e) => sum + e.count, 0);
    };
    // Eight at once, as a client opening several connections does: one argon2 verification.
    const answers = await Promise.all(Array.from({ length: 8 }, () => requestToken(app, burst, ['repository:open/app:pull'])));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(8).fill(200));
    expect(await auditOf('success')).toBe(1);
    // Wrong passwords at once are still verified, refused and recorded one by one.
    const wrong = await Promise.all(Array.from({ length: 3 }, () => requestToken(app, { ...burst, password: `${burst.password}-wrong` }, [])));
    expect(wrong.map((a) => a.statusCode)).toEqual([401, 401, 401]);
    expect(await auditOf('failure')).toBe(3);
  });

  it('does not tell existing users from unknown ones by timing', async () => {
    const time = async (username: string) => {
      const start = process.hrtime.bigint();
      await requestToken(app, { username, password: 'wrong-password' }, []);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    // Warm up, then interleave to share noise; a fresh name each time keeps under the rate limit.
    await time('outsider');
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 6; i++) {
      known.push(await time(['dev', 'reader', 'outsider'][i % 3]!));
      unknown.push(await time(`ghost-${i}`));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // Both run one argon2id verification: same order of magnitude, neither a shortcut.
    const ratio = median(known) / median(unknown);
    expect(ratio, `known ${median(known)} ms, unknown ${median(unknown)} ms`).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    expect(median(unknown)).toBeGreaterThan(3);
  });
});

describe('the token endpoint (POST, OAuth2)', () => {
  const form = (fields: Record<string, string>) =>
    app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(fields).toString() });

  it('grants a token for the password grant, with the granted scope listed', async () => {
    const response = await form({ grant_type: 'password', username: 'dev', password: dev.password, service: 'stowage', client_id: 'containerd-client', scope: 'repository:team/app:pull,push,delete' });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ scope: 'repository:team/app:pull,push', expires_in: 300, token_type: 'Bearer' });
    expect(body.refresh_token).toBeUndefined();
    expect((await app.get('/v2/team/app/tags/list', bearer(body.access_token))).statusCode).toBe(200);
  });

  it('issues a refresh token with access_type=offline (and offline_token=true on GET), which gets new tokens for other scopes', async () => {
    const response = await form({ grant_type: 'password', username: 'dev', password: dev.password, service: 'stowage', client_id: 'docker', access_type: 'offline' });
    const { refresh_token: refresh, scope } = response.json();
    expect(scope).toBe('');
    expect(refresh).toMatch(/^stw_refresh_/);
    const refreshed = await form({ grant_type: 'refresh_token', refresh_token: refresh, service: 'stowage', client_id: 'docker', scope: 'repository:team/other:pull,push' });
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json()).toMatchObject({ refresh_token: refresh, scope: 'repository:team/other:pull,push' });

    const viaGet = await requestToken(app, dev, [], { offline_token: 'true' });
    expect(viaGet.json().refresh_token).toMatch(/^stw_refresh_/);
    expect((await requestToken(app, null, [], { offline_token: 'true' })).json().refresh_token).toBeUndefined();

    // A password change revokes the refresh tokens.
    await apiOk(app, 'PUT', '/users/dev/password', { as: ADMIN, body: { password: dev.password } });
    const revoked = await form({ grant_type: 'refresh_token', refresh_token: refresh, service: 'stowage', client_id: 'docker' });
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().error).toBe('invalid_grant');
  });

  it('refuses wrong credentials, unknown grants, malformed requests and other services', async () => {
    const wrong = await form({ grant_type: 'password', username: 'dev', password: 'wrong', service: 'stowage', client_id: 'c' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual({ error: 'invalid_grant', error_description: 'invalid username or password' });
    expect((await form({ grant_type: 'refresh_token', refresh_token: 'stw_refresh_forged', service: 'stowage' })).statusCode).toBe(401);
    expect((await form({ grant_type: 'client_credentials', service: 'stowage' })).json().error).toBe('unsupported_grant_type');
    expect((await form({ grant_type: 'password', service: 'stowage' })).json().error).toBe('invalid_request');
    expect((await form({ grant_type: 'password', username: 'dev', password: dev.password, service: 'elsewhere' })).statusCode).toBe(400);
    expect((await form({ grant_type: 'password', username: 'dev', password: dev.password, scope: 'nonsense' })).json().error).toBe('invalid_scope');
    const json = await app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(json.statusCode).toBeGreaterThanOrEqual(400);
  });
});

describe('attacks that must fail', () => {
  it('a token for repository A used on B, and a pull token used to push', async () => {
    const token = await tokenFor(app, ADMIN, ['repository:team/app:pull']);
    const onB = await app.get('/v2/team/other/manifests/v1', bearer(token));
    expect(onB.statusCode).toBe(401);
    expect(onB.headers['www-authenticate']).toContain('scope="repository:team/other:pull",error="insufficient_scope"');
    const push = await app.post('/v2/team/app/blobs/uploads/', undefined, bearer(token));
    expect(push.statusCode).toBe(401);
    expect(push.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect((await app.inject({ method: 'DELETE', url: '/v2/team/app/manifests/v1', headers: bearer(token) })).statusCode).toBe(401);
  });

  it('an expired token, a token not yet valid, and one for another audience or issuer', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [claims, reason] of [
      [{ iat: now - 900, exp: now - 600 }, 'expired'],
      [{ nbf: now + 600 }, 'nbf'],
      [{ aud: 'another-registry' }, 'aud'],
      [{ iss: 'someone-else' }, 'iss'],
    ] as const) {
      const token = await signWithRegistryKey(claims);
      const response = await app.get('/v2/team/app/manifests/v1', bearer(token));
      expect(response.statusCode, reason).toBe(401);
      expect(response.headers['www-authenticate'], reason).toContain('error="invalid_token"');
    }
    // The same claims, valid: the forgery above fails only for the reason tested.
    expect((await app.get('/v2/team/app/manifests/v1', bearer(await signWithRegistryKey({})))).statusCode).toBe(200);
  });

  it('a tampered token, an alg:none token, an HS256 token keyed with the public key, and one signed with another key', async () => {
    const genuine = await tokenFor(app, reader, ['repository:team/app:pull']);
    const [header, , signature] = genuine.split('.');
    const escalated = { ...claimsOf(genuine), access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }] };
    const tampered = `${header}.${base64url.encode(JSON.stringify(escalated))}.${signature}`;
    const none = new UnsecuredJWT(escalated).encode();
    const { kid, jwk } = signingKeyOf(app);
    const publicJwk = JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
    const hs256 = await new SignJWT(escalated).setProtectedHeader({ alg: 'HS256', kid }).sign(createSecretKey(Buffer.from(publicJwk)));
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const foreign = await new SignJWT(escalated).setProtectedHeader({ alg: 'ES256', kid }).sign(other);
    const unknownKid = await new SignJWT(escalated).setProtectedHeader({ alg: 'ES256', kid: 'not-a-key' }).sign(other);
    for (const [label, token] of Object.entries({ tampered, none, hs256, foreign, unknownKid, garbage: 'not.a.jwt' })) {
      const response = await app.inject({ method: 'DELETE', url: '/v2/team/app/manifests/v1', headers: bearer(token) });
      expect(response.statusCode, label).toBe(401);
      expect(response.headers['www-authenticate'], label).toContain('error="invalid_token"');
    }
    expect((await app.get('/v2/team/app/manifests/v1', bearer(genuine))).statusCode).toBe(200);
  });

  it('a token of a revoked personal access token, of a disabled user, of a deleted robot', async () => {
    const created = await apiOk(app, 'POST', '/tokens', { as: dev, body: { name: 'ci', scopes: ['repository:team/**:pull'] } });
    const patCreds = { username: 'dev', password: created.secret as string };
    const fromPat = await tokenFor(app, patCreds, ['repository:team/app:pull,push']);
    expect(grantedScopes(fromPat)).toEqual(['repository:team/app:pull']);
    expect((await app.get('/v2/team/app/manifests/v1', bearer(fromPat))).statusCode).toBe(200);
    await apiOk(app, 'DELETE', `/tokens/${created.token.id}`, { as: dev });
    expect((await app.get('/v2/team/app/manifests/v1', bearer(fromPat))).statusCode).toBe(401);
    expect((await requestToken(app, patCreds, [])).statusCode).toBe(401);

    const temp = await addUser(app, 'temp');
    await apiOk(app, 'PUT', '/projects/team/members/temp', { as: ADMIN, body: { role: 'reader' } });
    const fromTemp = await tokenFor(app, temp, ['repository:team/app:pull']);
    expect((await app.get('/v2/team/app/manifests/v1', bearer(fromTemp))).statusCode).toBe(200);
    await apiOk(app, 'PATCH', '/users/temp', { as: ADMIN, body: { disabled: true } });
    expect((await app.get('/v2/team/app/manifests/v1', bearer(fromTemp))).statusCode).toBe(401);
    expect((await requestToken(app, temp, [])).statusCode).toBe(401);

    const robot = await apiOk(app, 'POST', '/robots', { as: ADMIN, body: { name: 'ci', project: 'team', permissions: ['repository:team/app:pull'] } });
    const robotCreds = { username: robot.robot.name as string, password: robot.secret as string };
    const fromRobot = await tokenFor(app, robotCreds, ['repository:team/app:pull']);
    expect((await app.get('/v2/team/app/manifests/v1', bearer(fromRobot))).statusCode).toBe(200);
    await apiOk(app, 'DELETE', `/robots/${robot.robot.id}`, { as: ADMIN });
    expect((await app.get('/v2/team/app/manifests/v1', bearer(fromRobot))).statusCode).toBe(401);
  });
});

describe('signing keys', () => {
  it('are created at first start, rotated on demand, and the old key verifies until its tokens expire', async () => {
    const before = await tokenFor(app, ADMIN, ['repository:team/app:pull']);
    const oldKid = JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid as string;
    const { kid: newKid } = await apiOk(app, 'POST', '/keys/rotate', { as: ADMIN, status: 200 });
    expect(newKid).not.toBe(oldKid);
    const after = await tokenFor(app, ADMIN, ['repository:team/app:pull']);
    expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid).toBe(newKid);
    for (const token of [before, after]) expect((await app.get('/v2/team/app/manifests/v1', bearer(token))).statusCode).toBe(200);
    const keys = (await apiOk(app, 'GET', '/keys', { as: ADMIN })).items as { kid: string; active: boolean; publicJwk: Record<string, string> }[];
    expect(keys.map((k) => [k.kid, k.active])).toEqual([
      [newKid, true],
      [oldKid, false],
    ]);
    expect(keys[0]!.publicJwk).not.toHaveProperty('d');
    expect((await apiOk(app, 'GET', '/audit?action=key.rotate', { as: ADMIN })).items[0]).toMatchObject({ actor: 'admin', target: newKid });

    // Once the old key was retired longer ago than a token lives, its tokens fail (here: after a
    // restart, as another process would see it).
    sqlite(app, 'update signing_keys set retired_at = ? where kid = ?', Date.now() - 10 * 60_000, oldKid);
    await app.restart();
    expect((await app.get('/v2/team/app/manifests/v1', bearer(before))).statusCode).toBe(401);
    expect((await app.get('/v2/team/app/manifests/v1', bearer(after))).statusCode).toBe(200);
  });
});

describe('Basic authentication on /v2/', () => {
  it('is off by default: Basic credentials on /v2 get the Bearer challenge', async () => {
    const response = await app.get('/v2/team/app/tags/list', { authorization: `Basic ${Buffer.from('admin:' + ADMIN.password).toString('base64')}` });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it('when on, authorizes each request by the same rules', async () => {
    const basicApp = await createAuthApp({ flags: { 'auth.basicOnRegistry': 'true' } });
    try {
      const header = (c: Creds) => ({ authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` });
      const rita = await addUser(basicApp, 'rita');
      await addProject(basicApp, 'team', { members: { rita: 'reader' } });
      expect((await basicApp.get('/v2/', header(ADMIN))).statusCode).toBe(200);
      expect((await basicApp.post('/v2/team/app/blobs/uploads/', undefined, header(ADMIN))).statusCode).toBe(202);
      expect((await basicApp.get('/v2/team/app/tags/list', header(rita))).statusCode).toBe(404);
      const denied = await basicApp.post('/v2/team/app/blobs/uploads/', undefined, header(rita));
      expect(denied.statusCode).toBe(403);
      expect(denied.json().errors[0].code).toBe('DENIED');
      expect((await basicApp.get('/v2/', header({ username: 'rita', password: 'wrong-one' }))).statusCode).toBe(401);
    } finally {
      await basicApp.cleanup();
    }
  });
});
