// Wrappers around the external load generators: wrk (GET with a Lua script for the Accept header)
// and ab (HEAD; wrk cannot measure HEAD because it waits for a body that never comes).
import { fileURLToPath } from 'node:url';
import { run } from './util.mjs';

const LUA = fileURLToPath(new URL('./accept.lua', import.meta.url));

/**
 * wrk for `seconds` at `connections` (`authorization`: an Authorization header value, e.g. a token); returns {rps, p50Ms, p99Ms, requests, errors, bytes}.
 * Non-2xx answers count as errors (wrk's "status" errors); callers treat any error as invalid.
 */
export async function wrk(url, { connections, seconds, accept, authorization }) {
  const threads = Math.max(1, Math.min(2, connections));
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '10s', '-s', LUA, url];
  // The token goes through the environment (the Lua script reads it), not the command line.
  const env = { ...process.env, WRK_ACCEPT: accept ?? '', WRK_AUTHORIZATION: authorization ?? '' };
  const r = await run('wrk', args, { env, timeoutMs: (seconds + 30) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk produced no summary (exit ${r.code}): ${(r.stdout + r.stderr).slice(-500)}`);
  const j = JSON.parse(line.slice(8));
  const errors = j.connect + j.read + j.write + j.status + j.timeout;
  return {
    rps: j.requests / (j.duration_us / 1e6),
    p50Ms: j.p50_us / 1000,
    p90Ms: j.p90_us / 1000,
    p99Ms: j.p99_us / 1000,
    maxMs: j.max_us / 1000,
    requests: j.requests,
    bytesPerReq: j.requests ? j.bytes / j.requests : 0,
    errors,
    errorDetail: errors ? { connect: j.connect, read: j.read, write: j.write, status: j.status, timeout: j.timeout } : undefined,
  };
}

/** ab -i (HEAD) -k (keep-alive) for `seconds` at `concurrency`; returns {rps, p50Ms, p99Ms, ...}. */
export async function abHead(url, { concurrency, seconds, authorization }) {
  // ab takes headers only on its command line; the bench's tokens live for minutes, on loopback.
  const auth = authorization ? ['-H', `Authorization: ${authorization}`] : [];
  const args = ['-i', '-k', '-q', '-c', String(concurrency), '-t', String(seconds), '-n', '5000000', '-s', '10', ...auth, url];
  const r = await run('ab', args, { timeoutMs: (seconds + 30) * 1000 });
  const num = (re) => { const m = re.exec(r.stdout); return m ? Number(m[1]) : null; };
  const rps = num(/Requests per second:\s+([\d.]+)/);
  if (rps == null) throw new Error(`ab produced no summary (exit ${r.code}): ${(r.stdout + r.stderr).slice(-500)}`);
  const complete = num(/Complete requests:\s+(\d+)/) ?? 0;
  const failed = num(/Failed requests:\s+(\d+)/) ?? 0;
  const non2xx = num(/Non-2xx responses:\s+(\d+)/) ?? 0;
  const keepAlive = num(/Keep-Alive requests:\s+(\d+)/) ?? 0;
  return {
    rps,
    p50Ms: num(/^\s+50%\s+(\d+)/m),
    p99Ms: num(/^\s+99%\s+(\d+)/m),
    requests: complete,
    keepAlive,
    errors: failed + non2xx,
    errorDetail: failed + non2xx ? { failed, non2xx } : undefined,
  };
}
