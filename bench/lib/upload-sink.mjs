// The push ceiling: the simplest durable HTTP push server this machine can run, measured with the
// same client and the same content as the registries, in the same rounds. It speaks just enough
// of the distribution API for the bench client and does nothing else: no hashing, no digest
// check, no metadata, no content address, every finished upload deleted at once.
//
// - POST …/blobs/uploads/ → 202 with a Location; PATCH appends the body (1 MiB stream buffers,
//   as Stowage's); PUT appends its body, if any, fsyncs and answers 201 (durable before the 201,
//   as a registry's must be), then deletes the file.
// - HEAD …/blobs/<digest> → 404 (nothing is kept, so the client always uploads).
// - PUT …/manifests/<ref> → the body written to a file and fsync'd, then 201 (and deleted).
//
//   node upload-sink.mjs DIR [PORT]    prints "READY <port>" when listening
import http from 'node:http';
import { createWriteStream, mkdirSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const dir = process.argv[2];
if (!dir) throw new Error('usage: upload-sink.mjs DIR [PORT]');
mkdirSync(dir, { recursive: true });
let next = 0;

const answer = (res, status, headers = {}) => {
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
};

/** Appends the request body to the upload's file, which the POST created (404 without it). */
async function append(req, res, file) {
  const size = await stat(file).then((s) => s.size, () => null);
  if (size === null) {
    req.resume();
    answer(res, 404);
    return false;
  }
  await pipeline(req, createWriteStream(file, { flags: 'r+', start: size, highWaterMark: 1 << 20 }));
  return true;
}

/** fsyncs the file, then removes it: durable before the answer, nothing kept after it. */
async function syncAndDrop(file) {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rm(file, { force: true });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://sink');
    if (/^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/.test(url.pathname) && req.method === 'HEAD') return answer(res, 404);
    if (/^\/v2\/.+\/manifests\/[^/]+$/.test(url.pathname) && req.method === 'PUT') {
      const file = join(dir, `m${next++}`);
      await pipeline(req, createWriteStream(file));
      await syncAndDrop(file);
      return answer(res, 201);
    }
    const m = /^\/v2\/(.+)\/blobs\/uploads\/(\d+)?$/.exec(url.pathname);
    if (!m) {
      req.resume();
      return answer(res, 404);
    }
    if (req.method === 'POST') {
      req.resume();
      const id = String(next++);
      await (await open(join(dir, id), 'w')).close();
      return answer(res, 202, { location: `/v2/${m[1]}/blobs/uploads/${id}` });
    }
    const file = join(dir, m[2] ?? 'missing');
    if (req.method === 'PATCH') {
      if (!(await append(req, res, file))) return;
      return answer(res, 202, { location: url.pathname });
    }
    if (req.method === 'PUT') {
      if (!(await append(req, res, file))) return;
      await syncAndDrop(file);
      return answer(res, 201);
    }
    req.resume();
    answer(res, 405);
  } catch (error) {
    if (!res.headersSent) answer(res, 500, { 'x-error': String(error.message).slice(0, 200) });
  }
});
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => console.log(`READY ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
