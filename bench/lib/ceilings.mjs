// The machine's own limits, measured in the same run: single-core SHA-256, loopback HTTP (small
// requests and bulk), and fsync'd disk writes. Push and pull figures are read against these.
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { openSync, writeSync, fsyncSync, closeSync, unlinkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, freeBytes, log, median } from './util.mjs';
import { wrk, abHead } from './tools.mjs';
import { download } from './transfer.mjs';

function sha256Once(buf, times) {
  const h = createHash('sha256');
  const t = performance.now();
  for (let i = 0; i < times; i++) h.update(buf);
  h.digest();
  return (buf.length * times) / 1e6 / ((performance.now() - t) / 1000);
}

/** Starts one of the bench's helper servers (a script printing "READY <port>") as a child process. */
function startHelperServer(name, args = []) {
  const script = fileURLToPath(new URL(`./${name}`, import.meta.url));
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${name} did not start`)), 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok({ url: `http://127.0.0.1:${m[1]}`, pid: child.pid, stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) });
      }
    });
    child.once('exit', () => fail(new Error(`${name} exited`)));
  });
}

const startLoopbackServer = () => startHelperServer('loopback-server.mjs', ['0']);

/** The push ceiling's server (lib/upload-sink.mjs), writing under `dir`. */
export const startUploadSink = (dir) => startHelperServer('upload-sink.mjs', [dir, '0']);

function diskWrite(dir, size) {
  mkdirSync(dir, { recursive: true });
  const need = size + 2 * 1024 * MiB;
  if (freeBytes(dir) < need) throw new Error(`disk ceiling skipped: less than ${(need / 2 ** 30).toFixed(1)} GiB free`);
  const file = join(dir, `disk-ceiling-${process.pid}.bin`);
  const buf = randomBytes(8 * MiB);
  const t = performance.now();
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < size; done += buf.length) writeSync(fd, buf, 0, Math.min(buf.length, size - done));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    unlinkSync(file);
  }
  return size / 1e6 / ((performance.now() - t) / 1000);
}

export async function measureCeilings({ quick, workDir, seconds }) {
  const out = {};
  const note = (k, f) => f().then((v) => { out[k] = v; }, (e) => { out[k] = null; out[`${k}Error`] = e.message; log(`ceiling ${k}: ${e.message}`); });

  await note('sha256MBps', async () => {
    const buf = randomBytes(8 * MiB);
    sha256Once(buf, 4); // warm-up
    return median([1, 2, 3].map(() => sha256Once(buf, quick ? 32 : 128)));
  });

  const srv = await startLoopbackServer();
  try {
    await note('loopbackGetRps', async () => {
      await wrk(`${srv.url}/small`, { connections: 64, seconds: 1 });
      const r = await wrk(`${srv.url}/small`, { connections: 64, seconds });
      return r.rps;
    });
    await note('loopbackHeadRps', async () => (await abHead(`${srv.url}/small`, { concurrency: 64, seconds })).rps);
    await note('loopbackBulkMBps', async () => {
      const size = quick ? 256 * MiB : 1024 * MiB;
      await download(`${srv.url}/bulk?size=${64 * MiB}`);
      const rs = [];
      for (let i = 0; i < 3; i++) {
        const r = await download(`${srv.url}/bulk?size=${size}`, { expectBytes: size });
        rs.push(r.bytes / 1e6 / (r.ms / 1000));
      }
      return median(rs);
    });
  } finally {
    await srv.stop();
  }

  await note('diskWriteMBps', async () => diskWrite(workDir, quick ? 256 * MiB : 1024 * MiB));
  return out;
}
