// A node's processes (src/app/cluster.ts): the process `stowage serve` starts serves and starts
// the other workers, which accept on its socket; a dead worker is replaced; /metrics answers for
// all of them; the node stops as a whole, and a killed node leaves no worker behind.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';

/** The pids of `pid`'s child processes that run `stowage serve` (tsx adds an esbuild child), from /proc. */
function workersOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('serve')) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** Whether `pid` runs (an exited orphan may stay a zombie where init does not reap it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** CPU ticks (user + system) a process has used so far. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** GET /v2/ on new connections, 16 at a time, until both processes have used CPU; returns how many. */
async function loadBoth(url: string, pids: number[]): Promise<number> {
  const before = pids.map(cpuTicks);
  const deadline = Date.now() + 30_000;
  let sent = 0;
  while (pids.some((pid, i) => cpuTicks(pid) === before[i]) && Date.now() < deadline) {
    // New connections each time, so the kernel hands them to either process.
    await Promise.all(Array.from({ length: 16 }, () => fetch(`${url}/v2/`, { headers: { connection: 'close' } }).then((r) => r.arrayBuffer())));
    sent += 16;
  }
  pids.forEach((pid, i) => expect(cpuTicks(pid), `process ${pid} served nothing`).toBeGreaterThan(before[i]!));
  return sent;
}

/** A GET on a connection of its own (no pool that could reuse one to a stopped process). */
function getOnNewConnection(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = httpGet(url, { agent: false, timeout: 30_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url} within 30 s`)));
    request.on('error', reject);
  });
}

/** One scrape of /metrics on a new connection. */
function scrape(url: string): Promise<{ status: number; text: string }> {
  return getOnNewConnection(`${url}/metrics`);
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a node with two workers', () => {
  let node: RunningStowage | undefined;
  afterEach(async () => {
    await node?.kill();
    node = undefined;
  });

  it('runs as two processes, both serving, and replaces a worker that dies', async () => {
    node = await startStowage({ args: ['--workers', '2'], capture: true, env: { STOWAGE_LOG_LEVEL: 'info' } });
    const first = node.process.pid!;
    // The first process plus one worker: no process that only supervises.
    const worker = await waitFor('the worker', () => workersOf(first)[0]);
    expect(workersOf(first)).toHaveLength(1);
    await waitFor('the listening log line', () => (node!.output!().includes('stowage listening') ? true : undefined));

    // Connections are spread over both processes: each one's CPU time grows under requests.
    await loadBoth(node.url, [first, worker]);

    // A worker killed outright: the first process goes on serving and starts a new one.
    process.kill(worker, 'SIGKILL');
    expect((await fetch(`${node.url}/v2/`)).status).toBe(200);
    const replacement = await waitFor('a new worker', () => workersOf(first).find((pid) => pid !== worker));
    expect(alive(worker)).toBe(false);
    expect(node.output!()).toContain('worker died; starting a new one');

    // SIGTERM to the node stops every process.
    await node.stop();
    await waitFor('the worker to exit', () => (alive(replacement) ? undefined : true), 15_000);
    expect(node.process.exitCode).toBe(0);
  });

  it('answers /metrics for both processes together, and fails a scrape that would miss one', async () => {
    node = await startStowage({ args: ['--workers', '2'], capture: true, env: { STOWAGE_LOG_LEVEL: 'info' } });
    const first = node.process.pid!;
    const worker = await waitFor('the worker', () => workersOf(first)[0]);
    // Logged once every worker accepts connections.
    await waitFor('the listening log line', () => (node!.output!().includes('stowage listening') ? true : undefined));
    // Requests that each process serves for certain: while one is stopped, the other accepts
    // every new connection.
    const serve = async (count: number, stopped: number) => {
      process.kill(stopped, 'SIGSTOP');
      try {
        for (let i = 0; i < count; i++) expect((await getOnNewConnection(`${node!.url}/v2/`)).status).toBe(200);
      } finally {
        process.kill(stopped, 'SIGCONT');
      }
    };
    await serve(5, worker);
    await serve(7, first);
    const sent = 12;
    const blob = Buffer.alloc(1000, 7);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    expect((await fetch(`${node.url}/v2/ops/node-metrics/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob })).status).toBe(201);

    // Whichever process takes the scrape, the counters are the node's: every request both
    // processes served, the same in every scrape. A figure read from the database (stored
    // bytes) is the database's, not once per process.
    for (let i = 0; i < 6; i++) {
      const { status, text } = await scrape(node.url);
      expect(status).toBe(200);
      expect(text).toContain(`stowage_http_requests_total{method="GET",route="base",status="200"} ${sent}\n`);
      expect(text).toContain('stowage_storage_used_bytes 1000\n');
      expect(text).toMatch(/stowage_http_request_duration_seconds_count\{method="GET",route="base"\} (\d+)/);
      expect(Number(/stowage_http_request_duration_seconds_count\{method="GET",route="base"\} (\d+)/.exec(text)![1])).toBe(sent);
    }

    // A process that cannot answer (stopped here) fails the scrape instead of leaving its share
    // out, which would look like counters going down.
    process.kill(worker, 'SIGSTOP');
    try {
      const { status, text } = await scrape(node.url);
      expect(status).toBe(503);
      expect(text).toContain(`worker ${worker} did not send its metrics`);
    } finally {
      process.kill(worker, 'SIGCONT');
    }
    expect((await scrape(node.url)).status).toBe(200);

    // A worker that replaces a dead one counts nothing until it serves: scrapes meanwhile do not
    // wait for it, however slowly it starts (stopped here while it loads its modules).
    process.kill(worker, 'SIGKILL');
    const replacement = await waitFor('a new worker', () => workersOf(first).find((pid) => pid !== worker));
    process.kill(replacement, 'SIGSTOP');
    try {
      expect((await scrape(node.url)).status).toBe(200);
    } finally {
      process.kill(replacement, 'SIGCONT');
    }
  });

  it('leaves no worker behind when the first process is killed', async () => {
    node = await startStowage({ args: ['--workers', '2'] });
    const worker = await waitFor('the worker', () => workersOf(node!.process.pid!)[0]);
    await node.kill();
    await waitFor('the orphaned worker to exit', () => (alive(worker) ? undefined : true), 15_000);
  });
});
