// Bulk downloads with curl writing to /dev/null. curl, not a Node client, receives the bytes:
// on these machines a Node http client tops out near 1.5 GB/s on loopback while curl takes
// 3-4 GB/s, so with curl the registry, not the client, is the limit being measured.
import { spawn } from 'node:child_process';

/** GETs `url` with curl, discards the body; resolves {bytes, ms}. Rejects on non-200/short body. */
export function download(url, { timeoutMs = 600_000, expectBytes, headers = {} } = {}) {
  return new Promise((ok, fail) => {
    const t = performance.now();
    // Extra headers (a bearer token) go in through stdin (`-H @-`), not the command line.
    const headerLines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\n`).join('');
    const args = ['-s', '-S', '-o', '/dev/null', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-w', '%{http_code} %{size_download}',
      ...(headerLines ? ['-H', '@-'] : []), url];
    const child = spawn('curl', args, { stdio: [headerLines ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (headerLines) child.stdin.end(headerLines);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.once('error', fail);
    child.once('close', (code) => {
      const ms = performance.now() - t;
      const [status, size] = out.trim().split(' ').map(Number);
      if (code !== 0) return fail(new Error(`curl ${url}: exit ${code} ${err.trim()}`));
      if (status !== 200) return fail(new Error(`GET ${new URL(url).pathname} -> ${status}`));
      if (expectBytes != null && size !== expectBytes) return fail(new Error(`GET ${url}: got ${size} of ${expectBytes} bytes`));
      ok({ bytes: size, ms });
    });
  });
}

/** `n` parallel downloads of the same URL; MB/s over the wall time of all of them. */
export async function parallelDownloads(url, n, opts) {
  const t = performance.now();
  const rs = await Promise.all(Array.from({ length: n }, () => download(url, opts)));
  const ms = performance.now() - t;
  const bytes = rs.reduce((a, r) => a + r.bytes, 0);
  return { bytes, ms, mbps: bytes / 1e6 / (ms / 1000) };
}
