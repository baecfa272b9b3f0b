// A trivial Node HTTP server for the machine ceilings: GET/HEAD /small answers a 1 KB JSON body,
// GET /bulk?size=N streams N bytes with 4 MiB writes. Prints "READY <port>" when listening.
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const small = Buffer.from(JSON.stringify({ pad: 'x'.repeat(980) }));
const big = randomBytes(4 << 20);
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/bulk')) {
    const size = Math.min(Number(new URL(req.url, 'http://x').searchParams.get('size')) || 0, 64 * 2 ** 30);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(big.length, size - sent);
        sent += n;
        if (!res.write(n === big.length ? big : big.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': small.length });
  res.end(req.method === 'HEAD' ? undefined : small);
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log(`READY ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
