// A minimal OCI Distribution client over node:http: exactly the requests real clients send,
// nothing hidden (no retries, no redirects followed silently). Every call checks the status.
import http from 'node:http';
import { once } from 'node:events';
import { MT } from './data.mjs';

export class HttpError extends Error {
  constructor(method, url, status, body) {
    super(`${method} ${url} -> ${status} ${String(body ?? '').slice(0, 300)}`);
    this.status = status;
  }
}

export function createClient(base, { maxSockets = 64 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 10_000 });
  const abs = (u) => new URL(u, base);

  /**
   * One request. `body`: Buffer/string; or `source` + `range`: streamed from a generated blob.
   * `discard`: count the response bytes without keeping them. Resolves {status, headers, body, bytes}.
   */
  function request(method, url, { headers = {}, body, source, range, discard = false, timeoutMs = 600_000 } = {}) {
    const u = abs(url);
    return new Promise((ok, fail) => {
      const h = { ...headers };
      let len = 0;
      if (body != null) len = Buffer.byteLength(body);
      else if (source) len = (range ? range[1] - range[0] : source.size);
      if (body != null || source || method === 'PUT' || method === 'PATCH' || method === 'POST') h['content-length'] = String(len);
      const req = http.request(u, { method, headers: h, agent }, (res) => {
        const parts = [];
        let bytes = 0;
        res.on('data', (c) => { bytes += c.length; if (!discard) parts.push(c); });
        res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: discard ? null : Buffer.concat(parts), bytes }));
        res.on('error', fail);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${u.pathname}: timeout`)));
      req.on('error', fail);
      if (body != null) req.end(body);
      else if (source) {
        (async () => {
          for (const c of source.chunks(...(range ?? []))) {
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
      const r = await request('POST', `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`, { body: Buffer.alloc(0) });
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
