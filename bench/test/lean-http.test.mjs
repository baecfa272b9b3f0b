// The small-image workload's lean HTTP client must read every framing a registry may answer
// with, on kept-alive connections. node --test bench/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { createLeanClient } from '../lib/lean-http.mjs';

test('Content-Length, chunked, HEAD, 204 and Connection: close answers, in order, on kept-alive connections', { timeout: 10_000 }, async () => {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      if (req.url === '/length') return res.writeHead(201, { 'content-length': 5, location: '/next?x=1' }).end('hello');
      if (req.url === '/chunked') {
        res.writeHead(200); // no length: node:http frames the body in chunks
        res.write('a'.repeat(70_000));
        setTimeout(() => res.end('tail'), 5);
        return;
      }
      if (req.url === '/head') return res.writeHead(404, { 'content-length': 40, 'content-type': 'application/json' }).end();
      if (req.url === '/empty') return res.writeHead(204).end();
      if (req.url === '/echo') return res.writeHead(200, { 'content-length': body.length }).end(body);
      if (req.url === '/close') return res.writeHead(200, { 'content-length': 2, connection: 'close' }).end('ok');
      res.writeHead(500).end();
    });
  });
  server.on('connection', (s) => sockets.add(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = createLeanClient(`http://127.0.0.1:${server.address().port}`, { connections: 2 });
  try {
    for (let round = 0; round < 3; round++) {
      const a = await client.request('POST', '/length');
      assert.equal(a.status, 201);
      assert.equal(a.body.toString(), 'hello');
      assert.equal(a.headers.location, '/next?x=1');
      const b = await client.request('GET', '/chunked');
      assert.equal(b.status, 200);
      assert.equal(b.body.length, 70_004);
      assert.ok(b.body.subarray(-4).equals(Buffer.from('tail')));
      const c = await client.request('HEAD', '/head');
      assert.equal(c.status, 404);
      assert.equal(c.body.length, 0);
      assert.equal((await client.request('DELETE', '/empty')).status, 204);
      const payload = Buffer.alloc(300_000, 7);
      const d = await client.request('PUT', '/echo', { 'content-type': 'application/octet-stream' }, payload);
      assert.ok(d.body.equals(payload));
    }
    // Eight requests at once over two connections: each gets its own answer.
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => client.request('PUT', '/echo', {}, Buffer.from(`n${i}`))));
    assert.deepEqual(many.map((r) => r.body.toString()), Array.from({ length: 8 }, (_, i) => `n${i}`));
    assert.equal(sockets.size, 2, 'connections are kept and reused');
    // A server that closes after its answer: that connection is dropped, so two requests at
    // once need a new one.
    assert.equal((await client.request('GET', '/close')).body.toString(), 'ok');
    const again = await Promise.all([client.request('POST', '/length'), client.request('POST', '/length')]);
    assert.deepEqual(again.map((r) => r.status), [201, 201]);
    assert.equal(sockets.size, 3);
  } finally {
    client.close();
    server.closeAllConnections();
    server.close();
  }
});

test('a connection that closes before its answer rejects the request', { timeout: 10_000 }, async () => {
  const server = http.createServer((req) => req.socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = createLeanClient(`http://127.0.0.1:${server.address().port}`);
  try {
    await assert.rejects(client.request('GET', '/'), /closed before the answer/);
  } finally {
    client.close();
    server.close();
  }
});
