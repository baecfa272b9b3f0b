// The bench client resends a request once when the server had closed the kept-alive connection it
// went out on (a server's idle timeout racing the next request), and only then. node --test bench/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { createClient } from '../lib/oci.mjs';

/** A server that answers the first request of each connection and drops the connection on the
 *  request numbers listed in `dropOn` (counted over the whole server). */
async function startServer(dropOn) {
  let requests = 0;
  const connections = new Set();
  const server = http.createServer((req, res) => {
    requests++;
    connections.add(req.socket);
    if (dropOn.has(requests)) return req.socket.destroy();
    res.end(`answer ${requests}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${server.address().port}`, stats: () => ({ requests, connections: connections.size }) };
}

test('a request on a reused connection that the server dropped is sent again on a new one', async () => {
  const { server, url, stats } = await startServer(new Set([2]));
  const client = createClient(url);
  try {
    assert.equal((await client.request('GET', '/v2/')).body.toString(), 'answer 1');
    // Goes out on the kept-alive connection, which the server drops: resent, answered as the 3rd.
    assert.equal((await client.request('PUT', '/v2/x/manifests/a', { body: Buffer.from('{}') })).body.toString(), 'answer 3');
    assert.deepEqual(stats(), { requests: 3, connections: 2 });
  } finally {
    client.close();
    server.close();
  }
});

test('a request dropped on a new connection fails: that is not a stale connection', async () => {
  const { server, url, stats } = await startServer(new Set([1]));
  const client = createClient(url);
  try {
    await assert.rejects(client.request('GET', '/v2/'), /socket hang up|ECONNRESET/);
    assert.equal(stats().requests, 1);
  } finally {
    client.close();
    server.close();
  }
});
