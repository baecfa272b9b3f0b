// The token server for Distribution in the token-auth variant (BENCH_AUTH=token). Distribution
// only verifies tokens; someone else issues them (Harbor's core, docker_auth, ...). This is that
// someone, kept as small as possible: an HTTP server on 127.0.0.1 in the bench process (so its
// CPU is never counted as Distribution's), one bench user checked with HTTP Basic, every
// requested scope granted, ES256 JWTs carrying their certificate in the `x5c` header, which
// Distribution 2.8 verifies against the `rootcertbundle` of its config.
import http from 'node:http';
import { createPrivateKey, randomUUID, timingSafeEqual, createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { run } from './util.mjs';

/** A P-256 key and a self-signed certificate (openssl) in `dir`; returns the file names. */
async function makeKeyAndCert(dir) {
  const keyFile = join(dir, 'token-issuer.key');
  const certFile = join(dir, 'token-issuer.crt');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=stowage-bench-token-issuer'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl could not make the token issuer's key and certificate: ${r.stderr.slice(-500)}`);
  return { keyFile, certFile };
}

/** Parses a Docker token `scope` (space-separated `type:name:actions` items; names may hold `:` for ports). */
export function parseScopes(values) {
  const out = [];
  for (const item of values.flatMap((v) => v.split(' ')).filter(Boolean)) {
    const first = item.indexOf(':');
    const last = item.lastIndexOf(':');
    if (first <= 0 || last === first) continue;
    out.push({ type: item.slice(0, first), name: item.slice(first + 1, last), actions: item.slice(last + 1).split(',').filter(Boolean) });
  }
  return out;
}

const digest = (s) => createHash('sha256').update(s).digest();
const sameSecret = (a, b) => timingSafeEqual(digest(a), digest(b));

/**
 * Starts the issuer. `service` and `issuer` must match Distribution's `auth.token` config;
 * `username`/`password` are the bench user. Resolves {realm, certFile, service, issuer, issued(), close()}.
 */
export async function startTokenIssuer({ dir, service, issuer, username, password, ttlSeconds = 300 }) {
  const { keyFile, certFile } = await makeKeyAndCert(dir);
  const key = createPrivateKey(readFileSync(keyFile));
  // x5c holds base64 (not base64url) DER, leaf first: here the self-signed certificate alone.
  const x5c = [new X509Certificate(readFileSync(certFile)).raw.toString('base64')];
  let issued = 0;

  async function answer(req, res) {
    const url = new URL(req.url, 'http://issuer');
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' || url.pathname !== '/token') return send(404, { details: 'only GET /token exists here' });
    if (url.searchParams.get('service') !== service) return send(400, { details: `service must be ${service}` });
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const [user, ...rest] = m ? Buffer.from(m[1], 'base64').toString().split(':') : [];
    if (!m || !sameSecret(user, username) || !sameSecret(rest.join(':'), password)) {
      return send(401, { details: 'wrong or missing Basic credentials for the bench user' }, { 'www-authenticate': 'Basic realm="bench token issuer"' });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access: parseScopes(url.searchParams.getAll('scope')) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c })
      .setIssuer(issuer).setSubject(username).setAudience(service)
      .setIssuedAt(now).setNotBefore(now - 5).setExpirationTime(now + ttlSeconds).setJti(randomUUID())
      .sign(key);
    issued++;
    send(200, { token, access_token: token, expires_in: ttlSeconds, issued_at: new Date(now * 1000).toISOString() });
  }

  const server = http.createServer((req, res) => {
    req.resume();
    answer(req, res).catch((e) => { if (!res.headersSent) { res.writeHead(500); res.end(JSON.stringify({ details: e.message })); } });
  });
  await new Promise((ok, fail) => { server.once('error', fail); server.listen(0, '127.0.0.1', ok); });
  const { port } = server.address();
  return {
    realm: `http://127.0.0.1:${port}/token`, certFile, service, issuer,
    issued: () => issued,
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(() => ok()); }),
  };
}
