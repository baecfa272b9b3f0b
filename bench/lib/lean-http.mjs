// A lean HTTP/1.1 client for the small-image pushes, so that the load generator is not what the
// workload measures. The small-image workload sends 13 small requests per image; through node:http
// the benchmark's client spent 3.2–4.3 ms of CPU per image, a quarter or more of this two-core
// machine while the registry is the fast one. The other workloads use wrk, ab and curl for the
// same reason. This client keeps its connections open, writes each request as one buffer and
// parses an answer just far enough for a registry client: status, headers, and a body framed by
// Content-Length or chunked encoding (none for HEAD, 204 and 304). One request at a time per
// connection; no pipelining, no redirects, no retries.
import net from 'node:net';

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Opens connections to `base` (http://host:port) on demand, at most `connections` at once.
 * `request(method, path, headers, body)` resolves to {status, headers, body}; header names are
 * lower case.
 */
export function createLeanClient(base, { connections = 8 } = {}) {
  const { hostname, port } = new URL(base);
  const host = `${hostname}:${port}`;
  const idle = [];
  const waiting = [];
  let open = 0;
  let closed = false;

  function connect() {
    open++;
    const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
    const conn = { socket, buffer: Buffer.alloc(0), exchange: null, broken: false };
    socket.on('data', (chunk) => {
      conn.buffer = conn.buffer.length ? Buffer.concat([conn.buffer, chunk]) : chunk;
      try {
        parse(conn);
      } catch (error) {
        fail(conn, error);
      }
    });
    socket.on('error', (error) => fail(conn, error));
    socket.on('close', () => fail(conn, new Error(`${host}: connection closed before the answer was complete`)));
    return conn;
  }

  function fail(conn, error) {
    if (!conn.broken) {
      conn.broken = true;
      open--;
      conn.socket.destroy();
      const i = idle.indexOf(conn);
      if (i >= 0) idle.splice(i, 1);
      if (waiting.length && !closed) waiting.shift()(connect());
    }
    const ex = conn.exchange;
    conn.exchange = null;
    ex?.reject(error);
  }

  function release(conn, keepAlive) {
    if (!keepAlive || closed) return fail(conn, new Error('connection closed'));
    if (waiting.length) waiting.shift()(conn);
    else idle.push(conn);
  }

  function acquire() {
    if (idle.length) return Promise.resolve(idle.pop());
    if (open < connections) return Promise.resolve(connect());
    return new Promise((resolve) => waiting.push(resolve));
  }

  /** Consumes as much of the buffer as the current exchange can use. */
  function parse(conn) {
    const ex = conn.exchange;
    if (!ex) {
      if (conn.buffer.length) throw new Error(`${host}: ${conn.buffer.length} bytes arrived with no request outstanding`);
      return;
    }
    if (!ex.head) {
      const end = conn.buffer.indexOf(CRLF2);
      if (end < 0) return;
      const lines = conn.buffer.subarray(0, end).toString('latin1').split('\r\n');
      conn.buffer = conn.buffer.subarray(end + 4);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1]);
      if (!status) throw new Error(`${host}: not an HTTP answer: ${lines[0]}`);
      const headers = {};
      for (let i = 1; i < lines.length; i++) {
        const colon = lines[i].indexOf(':');
        if (colon > 0) headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
      }
      ex.head = { status, headers };
      const bodiless = ex.method === 'HEAD' || status === 204 || status === 304;
      ex.chunked = !bodiless && /chunked/i.test(headers['transfer-encoding'] ?? '');
      ex.remaining = bodiless || ex.chunked ? 0 : Number(headers['content-length'] ?? NaN);
      if (!bodiless && !ex.chunked && !Number.isFinite(ex.remaining)) throw new Error(`${host}: an answer without Content-Length or chunked encoding`);
    }
    if (ex.chunked) {
      for (;;) {
        const lineEnd = conn.buffer.indexOf('\r\n');
        if (lineEnd < 0) return;
        const size = parseInt(conn.buffer.subarray(0, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) throw new Error(`${host}: bad chunk size`);
        if (size === 0) {
          // The last chunk; no trailers expected: its line is followed by an empty line.
          if (conn.buffer.length < lineEnd + 4) return;
          conn.buffer = conn.buffer.subarray(lineEnd + 4);
          break;
        }
        if (conn.buffer.length < lineEnd + 2 + size + 2) return;
        ex.parts.push(conn.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        conn.buffer = conn.buffer.subarray(lineEnd + 2 + size + 2);
      }
    } else if (ex.remaining > 0) {
      const take = Math.min(ex.remaining, conn.buffer.length);
      ex.parts.push(conn.buffer.subarray(0, take));
      conn.buffer = conn.buffer.subarray(take);
      ex.remaining -= take;
      if (ex.remaining > 0) return;
    }
    conn.exchange = null;
    const { status, headers } = ex.head;
    ex.resolve({ status, headers, body: ex.parts.length === 1 ? ex.parts[0] : Buffer.concat(ex.parts) });
    release(conn, !/close/i.test(headers.connection ?? ''));
  }

  async function request(method, path, headers = {}, body = null) {
    if (closed) throw new Error('lean client closed');
    const conn = await acquire();
    return new Promise((resolve, reject) => {
      // The answer being read: head ({status, headers}) once parsed, then the body's parts.
      conn.exchange = { method, resolve, reject, head: null, parts: [] };
      let head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
      for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
      if (body || method === 'PUT' || method === 'POST' || method === 'PATCH') head += `content-length: ${body ? body.length : 0}\r\n`;
      head += '\r\n';
      conn.socket.write(body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : head);
    });
  }

  return {
    request,
    close() {
      closed = true;
      for (const conn of idle.splice(0)) conn.socket.destroy();
    },
  };
}

/**
 * What a real client sends to push small images, over a lean connection pool: per blob a `HEAD`,
 * and when it is missing a `POST` and one `PUT` with the whole blob; then the manifest `PUT`.
 * The same requests as the node:http client's ensureBlob and putManifest (oci.mjs). `headersFor`
 * gives a repository's extra headers (a token, or none), resolved before the timed part.
 */
export function createLeanPusher(base, headersFor, { connections = 8 } = {}) {
  const http = createLeanClient(base, { connections });
  async function expect(method, path, statuses, headers, body) {
    const r = await http.request(method, path, headers, body);
    if (!statuses.includes(r.status)) throw new Error(`${method} ${path} -> ${r.status} ${r.body.toString().slice(0, 300)}`);
    return r;
  }
  return {
    async ensureBlob(repo, blob) {
      const auth = headersFor(repo);
      const head = await expect('HEAD', `/v2/${repo}/blobs/${blob.digest}`, [200, 404], auth);
      if (head.status === 200) return false;
      const started = await expect('POST', `/v2/${repo}/blobs/uploads/`, [202], auth);
      if (!started.headers.location) throw new Error(`POST upload for ${repo}: no Location header`);
      const u = new URL(started.headers.location, base);
      u.searchParams.set('digest', blob.digest);
      const done = await expect('PUT', u.pathname + u.search, [201], { ...auth, 'content-type': 'application/octet-stream' }, blob.buf);
      const got = done.headers['docker-content-digest'];
      if (got && got !== blob.digest) throw new Error(`PUT blob: registry says ${got}, expected ${blob.digest}`);
      return true;
    },
    async putManifest(repo, tag, manifest, mediaType) {
      await expect('PUT', `/v2/${repo}/manifests/${tag}`, [201], { ...headersFor(repo), 'content-type': mediaType }, manifest);
    },
    close: () => http.close(),
  };
}
