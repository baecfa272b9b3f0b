// Small helpers shared by the benchmark modules. No dependencies beyond Node itself.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { statfsSync } from 'node:fs';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const t0 = Date.now();
export function log(...args) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  console.log(`[${s}s]`, ...args);
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export const finite = (xs) => xs.filter((x) => typeof x === 'number' && Number.isFinite(x));

/**
 * Runs a command with a hard time limit; resolves {code, stdout, stderr}. Never rejects on a
 * non-zero exit (callers decide), rejects only when the program cannot be started.
 */
export function run(cmd, args, { timeoutMs = 120_000, env, cwd, input } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { env: env ?? process.env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { if (stdout.length < 4 * MiB) stdout += d; });
    child.stderr.on('data', (d) => { if (stderr.length < 4 * MiB) stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); fail(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      ok({ code, signal, stdout, stderr });
    });
    if (input != null) child.stdin.end(input); else child.stdin.end();
  });
}

/** Free bytes on the filesystem holding `path`. */
export function freeBytes(path) {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

/** Throws when a deadline passed; used to bound every loop in time as well as in count. */
export function deadline(ms, what) {
  const end = Date.now() + ms;
  return {
    check() {
      if (Date.now() > end) throw new Error(`${what}: time limit of ${Math.round(ms / 1000)} s exceeded`);
    },
    get expired() { return Date.now() > end; },
    remaining() { return end - Date.now(); },
  };
}

export function fmtNum(x, digits = 3) {
  if (x == null || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toPrecision(digits);
}

/** Runs `fn(i)` for i in [0, count) with at most `concurrency` in flight; stops at the first error. */
export async function pool(count, concurrency, fn, limit) {
  let next = 0;
  let failed = null;
  const worker = async () => {
    while (!failed && next < count) {
      limit?.check();
      const i = next++;
      try {
        await fn(i);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failed) throw failed;
  return next;
}
