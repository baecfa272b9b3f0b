// Tests of the token-auth variant's own parts (no registry needed): node --test bench/test/
// The end-to-end check against both registries is `QUICK=1 BENCH_AUTH=token npm run bench`,
// which fails its seeding when an anonymous manifest GET or blob HEAD is not refused with 401.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { jwtVerify, decodeProtectedHeader } from 'jose';
import { parseChallenge, resourceOf, createTokenAuth } from '../lib/token-auth.mjs';
import { startTokenIssuer, parseScopes } from '../lib/token-issuer.mjs';

test('resourceOf names the repository even when it holds route words', () => {
  assert.equal(resourceOf('/v2/bench/tags/tags/list'), 'repository:bench/tags');
  assert.equal(resourceOf('/v2/bench/blobs/blobs/sha256:ab'), 'repository:bench/blobs');
  assert.equal(resourceOf('/v2/bench/tags/blobs/uploads/'), 'repository:bench/tags');
  assert.equal(resourceOf('/v2/a/b/blobs/uploads/0f-1'), 'repository:a/b');
  assert.equal(resourceOf('/v2/a/manifests/latest'), 'repository:a');
  assert.equal(resourceOf('/v2/_catalog'), 'registry:catalog');
  assert.equal(resourceOf('/v2/'), null);
});

test('parseChallenge reads a Bearer challenge with several scopes', () => {
  const c = parseChallenge('Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"');
  assert.deepEqual(c, { scheme: 'bearer', realm: 'http://127.0.0.1:1/token', service: 'svc', scope: 'repository:a:pull,push repository:b:pull', error: 'insufficient_scope' });
  assert.equal(parseChallenge(undefined), null);
  assert.equal(parseChallenge('Basic realm="x"').scheme, 'basic');
});

/** A fake token endpoint that records the scopes asked for. */
function fakeRealm(expiresIn = 300) {
  const asked = [];
  const fetchImpl = async (url, { headers }) => {
    asked.push({ scopes: url.searchParams.getAll('scope'), service: url.searchParams.get('service'), authorization: headers.authorization });
    return new Response(JSON.stringify({ token: `t${asked.length}`, expires_in: expiresIn }), { status: 200 });
  };
  return { asked, fetchImpl };
}

test('the client asks for pull,push on repositories it writes to, caches per repository, and honours expiry', async () => {
  const { asked, fetchImpl } = fakeRealm();
  const auth = createTokenAuth({ credentials: { username: 'u', password: 'p:w' }, fetchImpl });
  const challenge = 'Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:team/app:push,pull"';
  auth.noteWrite('repository:team/app');
  assert.equal(await auth.answer(challenge, 'repository:team/app'), 't1');
  assert.deepEqual(asked[0].scopes, ['repository:team/app:pull,push']);
  assert.equal(asked[0].service, 'svc');
  assert.equal(asked[0].authorization, `Basic ${Buffer.from('u:p:w').toString('base64')}`);
  assert.equal(auth.cached('repository:team/app'), 't1');
  assert.equal(auth.cached('repository:other'), null);
  // A mount's source scope is asked for in the same token, and a cached token without it is not reused.
  assert.equal(auth.cached('repository:team/app', { extraScopes: ['repository:base/img:pull'] }), null);
  await auth.answer('Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:team/app:pull,push"', 'repository:team/app', ['repository:base/img:pull']);
  assert.deepEqual(asked[1].scopes.sort(), ['repository:base/img:pull', 'repository:team/app:pull,push']);
  assert.equal(auth.cached('repository:team/app', { extraScopes: ['repository:base/img:pull'] }), 't2');
  // Read-only repositories get pull only; the catalog gets registry:catalog:*.
  await auth.answer('Bearer realm="http://127.0.0.1:1/token",service="svc"', 'repository:ro');
  assert.deepEqual(asked[2].scopes, ['repository:ro:pull']);
  await auth.answer('Bearer realm="http://127.0.0.1:1/token",service="svc"', 'registry:catalog');
  assert.deepEqual(asked[3].scopes, ['registry:catalog:*']);
  // A token must outlive the run it is handed to, plus the margin.
  assert.equal(auth.cached('repository:ro', { validForS: 200 }), `t3`);
  assert.equal(auth.cached('repository:ro', { validForS: 280 }), null);
  assert.equal(auth.fetched(), 4);
  // Not a Bearer challenge: nothing to answer.
  assert.equal(await auth.answer('Basic realm="x"', 'repository:ro'), null);
});

test('concurrent challenges for the same scopes fetch one token', async () => {
  const { asked, fetchImpl } = fakeRealm();
  const auth = createTokenAuth({ credentials: { username: 'u', password: 'p' }, fetchImpl });
  const ch = 'Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a:pull"';
  const tokens = await Promise.all(Array.from({ length: 8 }, () => auth.answer(ch, 'repository:a')));
  assert.equal(asked.length, 1);
  assert.deepEqual(new Set(tokens), new Set(['t1']));
});

test('the issuer refuses wrong credentials and signs ES256 tokens that verify against its certificate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-issuer-'));
  const issuer = await startTokenIssuer({ dir, service: 'svc', issuer: 'iss', username: 'bench', password: 'secret', ttlSeconds: 120 });
  try {
    const url = `${issuer.realm}?service=svc&scope=${encodeURIComponent('repository:a/b:pull,push')}&scope=registry:catalog:*`;
    const basic = (u, p) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    assert.equal((await fetch(url)).status, 401);
    assert.equal((await fetch(url, { headers: basic('bench', 'wrong') })).status, 401);
    assert.equal((await fetch(url.replace('service=svc', 'service=other'), { headers: basic('bench', 'secret') })).status, 400);
    const res = await fetch(url, { headers: basic('bench', 'secret') });
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.token, j.access_token);
    assert.equal(j.expires_in, 120);
    assert.ok(!Number.isNaN(Date.parse(j.issued_at)));
    const cert = new X509Certificate(readFileSync(issuer.certFile));
    const header = decodeProtectedHeader(j.token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.x5c[0], cert.raw.toString('base64'));
    const { payload } = await jwtVerify(j.token, cert.publicKey, { issuer: 'iss', audience: 'svc', algorithms: ['ES256'] });
    assert.equal(payload.sub, 'bench');
    assert.ok(payload.jti && payload.nbf <= payload.iat && payload.exp - payload.iat === 120);
    assert.deepEqual(payload.access, [
      { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    assert.equal(issuer.issued(), 1);
  } finally {
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseScopes keeps a registry port in the name', () => {
  assert.deepEqual(parseScopes(['repository:localhost:5000/a:pull']), [{ type: 'repository', name: 'localhost:5000/a', actions: ['pull'] }]);
});
