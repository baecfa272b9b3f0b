// The client side of Docker token authentication, as docker and containerd do it: a 401 with
// `WWW-Authenticate: Bearer realm=...,service=...,scope=...` sends the client to the realm with
// Basic credentials for the scope; the token is cached per repository (or the catalog) until
// shortly before it expires and attached to every later request of that repository, so the
// steady state costs no extra round trip. Used by lib/oci.mjs (BENCH_AUTH=token).

/** Seconds before expiry at which a cached token is no longer used (clients refresh early too). */
const EXPIRY_MARGIN_S = 30;

/** `Bearer realm="..",service="..",scope=".."` -> {scheme, realm, service, scope, error}; null when absent. */
export function parseChallenge(header) {
  const m = /^\s*(\w+)\s+(.*)$/s.exec(header ?? '');
  if (!m) return null;
  const params = { scheme: m[1].toLowerCase() };
  for (const [, k, v] of m[2].matchAll(/(\w+)\s*=\s*"([^"]*)"/g)) params[k.toLowerCase()] = v;
  return params;
}

/** The resource a registry path addresses: `repository:<name>` or `registry:catalog`; null for /v2/. */
export function resourceOf(pathname) {
  if (pathname === '/v2/_catalog') return 'registry:catalog';
  // Anchored on the route's tail: a name may itself hold `tags` or `blobs` (bench/tags/tags/list).
  const m = /^\/v2\/(.+)\/(?:manifests\/[^/]+|blobs\/uploads\/[^/]*|blobs\/[^/]+|tags\/list|referrers\/[^/]+)$/.exec(pathname);
  return m ? `repository:${m[1]}` : null;
}

/** `repository:a:pull,push` -> ['repository:a', ['pull','push']] (names may hold ':' for a port). */
function splitScope(scope) {
  const i = scope.lastIndexOf(':');
  return [scope.slice(0, i), scope.slice(i + 1).split(',').filter(Boolean)];
}

/**
 * `credentials`: {username, password}. Returns the token cache and the challenge answerer.
 * `fetchImpl` is injectable for tests; the default is Node's fetch.
 */
export function createTokenAuth({ credentials, fetchImpl = fetch }) {
  const basic = 'Basic ' + Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  const tokens = new Map(); // resource -> {token, expiresAt (ms), scopes: Set<string>}
  const inflight = new Map(); // realm?query -> Promise<token response>
  const written = new Set(); // repositories this client wrote to: asked for with pull,push, as docker does
  let realm = null; // {realm, service} from the last Bearer challenge
  let fetched = 0;

  function cached(resource, { extraScopes = [], validForS = 0 } = {}) {
    const e = resource && tokens.get(resource);
    if (!e || e.expiresAt - (EXPIRY_MARGIN_S + validForS) * 1000 < Date.now()) return null;
    return extraScopes.every((s) => covers(e.scopes, s)) ? e.token : null;
  }

  /** Whether one of `scopes` grants at least the actions of `scope` on its resource. */
  function covers(scopes, scope) {
    const [res, acts] = splitScope(scope);
    return [...scopes].some((s) => {
      const [r, a] = splitScope(s);
      return r === res && acts.every((x) => a.includes(x));
    });
  }

  /** The scopes to ask for: the challenge's, what this resource had before, pull,push when written to. */
  function wantedScopes(resource, challengeScope, extraScopes) {
    const actions = new Map();
    const add = (res, acts) => actions.set(res, new Set([...(actions.get(res) ?? []), ...acts]));
    for (const s of (challengeScope ?? '').split(' ').filter(Boolean)) add(...splitScope(s));
    for (const s of extraScopes) add(...splitScope(s));
    if (resource === 'registry:catalog') add(resource, ['*']);
    else if (resource) {
      add(resource, written.has(resource) ? ['pull', 'push'] : ['pull']);
      for (const s of tokens.get(resource)?.scopes ?? []) if (s.startsWith(`${resource}:`)) add(...splitScope(s));
    }
    return [...actions].map(([res, acts]) => `${res}:${[...acts].sort().join(',')}`);
  }

  async function fetchToken(scopes) {
    const u = new URL(realm.realm);
    if (realm.service) u.searchParams.set('service', realm.service);
    for (const s of scopes) u.searchParams.append('scope', s);
    const key = u.href;
    if (!inflight.has(key)) {
      inflight.set(key, (async () => {
        const res = await fetchImpl(u, { headers: { authorization: basic }, signal: AbortSignal.timeout(60_000) });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`token endpoint ${u.origin}${u.pathname} -> ${res.status} ${text.slice(0, 300)}`);
        fetched++;
        const j = JSON.parse(text);
        const token = j.token ?? j.access_token;
        if (!token) throw new Error(`token endpoint ${u.origin}${u.pathname} answered without a token`);
        // The spec's default lifetime is 60 s when expires_in is missing.
        return { token, expiresAt: Date.now() + (Number(j.expires_in) || 60) * 1000 };
      })().finally(() => inflight.delete(key)));
    }
    return inflight.get(key);
  }

  return {
    cached,
    noteWrite(resource) { if (resource?.startsWith('repository:')) written.add(resource); },
    /**
     * Answers a 401: fetches (and caches under `resource`) a token for the challenged scopes.
     * Resolves the token, or null when the challenge is not a Bearer one (nothing to retry with).
     */
    async answer(wwwAuthenticate, resource, extraScopes = []) {
      const c = parseChallenge(wwwAuthenticate);
      if (!c || c.scheme !== 'bearer' || !c.realm) return null;
      realm = { realm: c.realm, service: c.service };
      const scopes = wantedScopes(resource, c.scope, extraScopes);
      const t = await fetchToken(scopes);
      if (resource) tokens.set(resource, { ...t, scopes: new Set(scopes) });
      return t.token;
    },
    /** Token endpoint calls so far (the quick check reads it; deduplicated concurrent calls count once). */
    fetched: () => fetched,
  };
}
