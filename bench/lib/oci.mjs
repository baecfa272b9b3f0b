// A minimal OCI Distribution client over node:http: exactly the requests real clients send,
// nothing hidden (no redirects followed silently; the only retry is the one after a token
// challenge, as every real client does). Every call checks the status.
import http from 'node:http';
import { once } from 'node:events';
import { MT } from './data.mjs';
import { createTokenAuth, resourceOf } from './token-auth.mjs';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export class HttpError extends Error {
  constructor(method, url, status, body) {
    super(`${method} ${url} -> ${status} ${String(body ?? '').slice(0, 300)}`);
    this.status = status;
  }
}

/**
 * `credentials` ({username, password}): answer Bearer challenges with tokens from the realm
 * (BENCH_AUTH=token); without them every request goes out anonymous, as before.
 */
export function createClient(base, { maxSockets = 64, credentials = null } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 10_000 });
  const abs = (u) => new URL(u, base);
  const auth = credentials ? createTokenAuth({ credentials }) : null;

  /**
   * One request. `body`: Buffer/string; or `source` + `range`: streamed from a generated blob.
   * `discard`: count the response bytes without keeping them. Resolves {status, headers, body, bytes}.
   * With credentials, a cached token of the repository goes along; a 401 Bearer challenge fetches
   * one and repeats the request once (bodies are regenerated from `source`). `scopes`: more
   * scopes for the token (a mount's source); `anonymous`: send no token and do not answer a 401.
   */
  async function request(method, url, { scopes: extra = [], anonymous = false, ...opts } = {}) {
    const u = abs(url);
    if (!auth || anonymous) return send(method, u, opts, null);
    const resource = resourceOf(u.pathname);
    if (WRITES.has(method)) auth.noteWrite(resource);
    // A deletion asks for `delete` up front (as crane and regclient do) instead of being refused first.
    const scopes = method === 'DELETE' && resource?.startsWith('repository:') ? [...extra, `${resource}:delete`] : extra;
    const r = await send(method, u, opts, auth.cached(resource, { extraScopes: scopes }));
    if (r.status !== 401) return r;
    const token = await auth.answer(r.headers['www-authenticate'], resource, scopes);
    return token ? send(method, u, opts, token) : r;
  }

  /**
   * A kept-alive connection that the server closes (its idle timeout) just as a request goes out
   * on it fails with ECONNRESET before any answer. Like Go's HTTP client and as Node's docs advise
   * (`request.reusedSocket`), such a request is sent once more, on a new connection.
   */
  async function send(method, u, opts, token) {
    try {
      return await sendOnce(method, u, opts, token);
    } catch (error) {
      if (!error.staleConnection) throw error;
      return sendOnce(method, u, opts, token);
    }
  }

  function sendOnce(method, u, { headers = {}, body, source, range, discard = false, timeoutMs = 600_000 } = {}, token) {
    return new Promise((ok, fail) => {
      const h = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      let answered = false;
      let len = 0;
      if (body != null) len = Buffer.byteLength(body);
      else if (source) len = (range ? range[1] - range[0] : source.size);
      if (body != null || source || method === 'PUT' || method === 'PATCH' || method === 'POST') h['content-length'] = String(len);
      const req = http.request(u, { method, headers: h, agent }, (res) => {
        answered = true; // an early answer (a 401 before the body was read) stops the upload
        const parts = [];
        let bytes = 0;
        res.on('data', (c) => { bytes += c.length; if (!discard) parts.push(c); });
        res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: discard ? null : Buffer.concat(parts), bytes }));
        res.on('error', fail);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${u.pathname}: timeout`)));
      req.on('error', (error) => {
        if (req.reusedSocket && !answered && error.code === 'ECONNRESET') error.staleConnection = true;
        fail(error);
      });
      if (body != null) req.end(body);
      else if (source) {
        (async () => {
          for (const c of source.chunks(...(range ?? []))) {
            if (answered || req.destroyed) break;
            if (!req.write(c)) await once(req, 'drain');
          }
          req.end();
        })().catch((e) => req.destroy(e));
      } else req.end();
    });
  }

  async function expect(method, url, statuses, opts) {
    const r = await request(method, url, opts);
    if (!statuses.includes(r.status)) throw new HttpError(method, abs(url).pathname + abs(url).search, r.status, r.body?.toString());
    return r;
  }

  const withDigest = (loc, digest) => {
    const u = abs(loc);
    u.searchParams.set('digest', digest);
    return u;
  };

  return {
    base,
    request,
    expect,
    close: () => agent.destroy(),
    /** Token endpoint calls so far (0 without credentials). */
    tokensFetched: () => auth?.fetched() ?? 0,

    /**
     * Headers for an outside tool (wrk, ab, curl) about to spend `validForS` seconds on `repo`
     * ('catalog' for the catalog; `push`: for pushing), also used to fill the token cache before a
     * measurement: `{authorization}` with a token that outlives the run, or {}
     * when the registry wants none. A cached token is reused; otherwise the challenge of an
     * anonymous `GET /v2/` leads to the realm, as `docker login` finds it.
     */
    async authHeaders(repo, { validForS = 0, push = false } = {}) {
      if (!auth) return {};
      const resource = repo === 'catalog' ? 'registry:catalog' : `repository:${repo}`;
      if (push) auth.noteWrite(resource); // asks for pull,push like a client about to push
      let token = auth.cached(resource, { validForS, extraScopes: push ? [`${resource}:pull,push`] : [] });
      if (!token) {
        const ping = await send('GET', abs('/v2/'), {}, null);
        if (ping.status === 200) return {};
        token = await auth.answer(ping.headers['www-authenticate'], resource);
        if (!token) throw new HttpError('GET', '/v2/', ping.status, 'no Bearer challenge to answer');
      }
      return { authorization: `Bearer ${token}` };
    },

    async blobExists(repo, digest) {
      const r = await request('HEAD', `/v2/${repo}/blobs/${digest}`);
      return r.status === 200;
    },

    /** POST + one monolithic PUT with the whole body. Returns the elapsed ms of the two requests. */
    async pushBlob(repo, blob) {
      const t = performance.now();
      const start = await expect('POST', `/v2/${repo}/blobs/uploads/`, [202]);
      const loc = start.headers.location;
      if (!loc) throw new Error(`POST upload for ${repo}: no Location header`);
      const done = await expect('PUT', withDigest(loc, blob.digest), [201], {
        source: blob,
        headers: { 'content-type': 'application/octet-stream' },
      });
      const got = done.headers['docker-content-digest'];
      if (got && got !== blob.digest) throw new Error(`PUT blob: registry says ${got}, expected ${blob.digest}`);
      return performance.now() - t;
    },

    /** POST, then PATCH chunks of `chunk` bytes (Content-Range), then PUT ?digest= without body. */
    async pushBlobChunked(repo, blob, chunk) {
      const t = performance.now();
      const start = await expect('POST', `/v2/${repo}/blobs/uploads/`, [202]);
      let loc = start.headers.location;
      for (let off = 0, i = 0; off < blob.size && i < 1_000_000; off += chunk, i++) {
        const end = Math.min(off + chunk, blob.size);
        const r = await expect('PATCH', loc, [202], {
          source: blob,
          range: [off, end],
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${end - 1}` },
        });
        loc = r.headers.location ?? loc;
      }
      await expect('PUT', withDigest(loc, blob.digest), [201], { body: Buffer.alloc(0) });
      return performance.now() - t;
    },

    /** Cross-repository mount; falls back to an upload when the registry answers 202. */
    async mountOrPush(repo, from, blob) {
      // Like docker, ask for pull on the source in the same token, or the registry cannot mount.
      const r = await request('POST', `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`,
        { body: Buffer.alloc(0), scopes: [`repository:${from}:pull`] });
      if (r.status === 201) return;
      if (r.status !== 202) throw new HttpError('POST(mount)', repo, r.status, r.body?.toString());
      await expect('PUT', withDigest(r.headers.location, blob.digest), [201], { source: blob, headers: { 'content-type': 'application/octet-stream' } });
    },

    /** HEAD first (as clients do), upload only when missing. */
    async ensureBlob(repo, blob) {
      if (await this.blobExists(repo, blob.digest)) return false;
      await this.pushBlob(repo, blob);
      return true;
    },

    async putManifest(repo, ref, buf, mediaType = MT.manifest) {
      const r = await expect('PUT', `/v2/${repo}/manifests/${ref}`, [201], { body: buf, headers: { 'content-type': mediaType } });
      return r.headers['docker-content-digest'];
    },

    async getManifest(repo, ref, accept) {
      return expect('GET', `/v2/${repo}/manifests/${ref}`, [200], { headers: { accept } });
    },

    async deleteBlob(repo, digest) {
      return request('DELETE', `/v2/${repo}/blobs/${digest}`);
    },

    /**
     * GETs `path` and follows `Link: <...>; rel="next"` headers, at most `maxPages` pages.
     * `key` is the JSON array to count ("tags" or "repositories").
     */
    async walk(path, key, maxPages = 10_000) {
      let url = path;
      let items = 0;
      let pages = 0;
      const seen = new Set();
      while (url && pages < maxPages) {
        const r = await expect('GET', url, [200]);
        pages++;
        const list = JSON.parse(r.body.toString())[key] ?? [];
        items += list.length;
        for (const x of list) seen.add(x);
        const link = r.headers.link;
        const m = link && /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
        url = m ? m[1] : null;
      }
      return { items, unique: seen.size, pages };
    },
  };
}
