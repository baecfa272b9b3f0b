// A node's processes (src/app/cluster.ts): the process `stowage serve` starts serves and starts
// the other workers, which accept on its socket; a dead worker is replaced; the node stops as a
// whole, and a killed node leaves no worker behind.
import { readFileSync, readdirSync } from 'node:fs';
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
    const cpu = (pid: number) => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]);
    };
    const before = [cpu(first), cpu(worker)];
    const deadline = Date.now() + 30_000;
    while ((cpu(first) === before[0] || cpu(worker) === before[1]) && Date.now() < deadline) {
      // New connections each time, so the kernel hands them to either process.
      await Promise.all(Array.from({ length: 16 }, () => fetch(`${node!.url}/v2/`, { headers: { connection: 'close' } }).then((r) => r.arrayBuffer())));
    }
    expect(cpu(first)).toBeGreaterThan(before[0]!);
    expect(cpu(worker)).toBeGreaterThan(before[1]!);

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

  it('leaves no worker behind when the first process is killed', async () => {
    node = await startStowage({ args: ['--workers', '2'] });
    const worker = await waitFor('the worker', () => workersOf(node!.process.pid!)[0]);
    await node.kill();
    await waitFor('the orphaned worker to exit', () => (alive(worker) ? undefined : true), 15_000);
  });
});
