// SIGKILL during garbage collection runs (while marking, then while deleting), restart on the same
// data, and check: no live blob row without its bytes, kept images pull whole, the interrupted run
// is recorded as failed once its lease expires, and the next run finishes the work.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';
import { makeImage, pullImage, pushImage } from '../support/scaleout.js';

const GARBAGE = 20_000;
const running: RunningStowage[] = [];
let dataDir: string | undefined;

afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.kill()));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function start(dir?: string): Promise<RunningStowage> {
  const server = await startStowage({ ...(dir ? { dataDir: dir } : {}), env: { STOWAGE_WORKERS: '1' } });
  running.push(server);
  return server;
}

function blobPath(dir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(dir, 'storage', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** Many unreferenced blobs, two days old, linked into crash/junk (written while the server is down). */
function plantGarbage(dir: string): string[] {
  const db = new BetterSqlite3(join(dir, 'stowage.db'));
  const old = Date.now() - 2 * 86_400_000;
  const digests: string[] = [];
  try {
    const repository = db.prepare("insert into repositories (name, created_at) values ('crash/junk', ?) returning id").get(old) as { id: number };
    const blob = db.prepare('insert into blobs (digest, size, created_at, seen_at) values (?, ?, ?, ?)');
    const link = db.prepare('insert into repository_blobs (repository_id, digest, created_at) values (?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < GARBAGE; i++) {
        const content = randomBytes(256);
        const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
        mkdirSync(join(blobPath(dir, digest), '..'), { recursive: true });
        writeFileSync(blobPath(dir, digest), content);
        blob.run(digest, content.length, old, old);
        link.run(repository.id, digest, old);
        digests.push(digest);
      }
    })();
  } finally {
    db.close();
  }
  return digests;
}

/** Every blob row not marked for deletion has its bytes; resolves to the rows (marked or not). */
function checkConsistent(dir: string): { live: string[]; marked: string[] } {
  const db = new BetterSqlite3(join(dir, 'stowage.db'), { readonly: true });
  const rows = db.prepare('select digest, deleting_since from blobs').all() as { digest: string; deleting_since: number | null }[];
  const linkedToMarked = db.prepare('select count(*) as n from repository_blobs rb join blobs b on b.digest = rb.digest where b.deleting_since is not null').get() as { n: number };
  db.close();
  const live = rows.filter((r) => r.deleting_since === null).map((r) => r.digest);
  expect(live.filter((digest) => !existsSync(blobPath(dir, digest)))).toEqual([]);
  expect(linkedToMarked.n).toBe(0);
  return { live, marked: rows.filter((r) => r.deleting_since !== null).map((r) => r.digest) };
}

async function startRun(server: RunningStowage): Promise<string> {
  const deadline = Date.now() + 40_000; // the killed run's lease (15 s) must expire first
  for (;;) {
    const res = await fetch(`${server.url}/api/v1/gc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grace: '1h' }) });
    if (res.status === 202) return ((await res.json()) as { id: string }).id;
    expect(res.status).toBe(409);
    if (Date.now() > deadline) throw new Error('the interrupted run still holds the lease after 40 s');
    await sleep(500);
  }
}

async function waitFor(server: RunningStowage, id: string, until: (run: any) => boolean): Promise<any> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const run = await (await fetch(`${server.url}/api/v1/gc/runs/${id}`)).json();
    if (until(run)) return run;
    if (run.status !== 'running') throw new Error(`run ${id} ended before the point to kill it: ${JSON.stringify(run)}`);
    if (Date.now() > deadline) throw new Error(`run ${id} did not get there in 60 s: ${JSON.stringify(run)}`);
    await sleep(10);
  }
}

it('a GC run killed while marking and one killed while deleting leave a consistent state; the next run finishes', async () => {
  let server = await start();
  dataDir = server.dataDir;
  const kept = makeImage('kept', [randomBytes(3000), randomBytes(3000)]);
  await pushImage([server.url], server.url, 'crash/app', kept, 'v1');
  await server.stop();
  const garbage = plantGarbage(server.dataDir);

  // 1. Killed while marking.
  server = await start(dataDir);
  const first = await startRun(server);
  const marking = await waitFor(server, first, (run) => run.blobsMarked > 0);
  expect(marking.phase, JSON.stringify(marking)).toBe('marking');
  await server.kill();
  const afterFirst = checkConsistent(dataDir);
  expect(afterFirst.marked.length).toBeGreaterThan(0);
  expect(afterFirst.marked.length).toBeLessThan(GARBAGE);

  // 2. Killed while deleting.
  server = await start(dataDir);
  await pullImage(server.url, 'crash/app', 'v1');
  const second = await startRun(server);
  expect(await (await fetch(`${server.url}/api/v1/gc/runs/${first}`)).json()).toMatchObject({ status: 'failed', error: expect.stringContaining('interrupted') });
  await waitFor(server, second, (run) => run.phase === 'sweeping' && run.blobsFreed > 0);
  await server.kill();
  const afterSecond = checkConsistent(dataDir);
  expect(afterSecond.marked.length).toBeGreaterThan(0);

  // 3. The next run completes the work: every planted blob gone, rows and bytes; the image stays.
  server = await start(dataDir);
  await pullImage(server.url, 'crash/app', 'v1');
  const third = await startRun(server);
  const done = await waitFor(server, third, (run) => run.status !== 'running');
  expect(done).toMatchObject({ status: 'succeeded', error: null });
  expect(done.blobsFreed).toBe(afterSecond.marked.length + (done.blobsMarked as number));
  const final = checkConsistent(dataDir);
  expect(final.marked).toEqual([]);
  const left = new Set(final.live);
  expect(garbage.filter((digest) => left.has(digest) || existsSync(blobPath(dataDir!, digest)))).toEqual([]);
  expect(final.live.sort()).toEqual(kept.blobs.map((b) => b.content).map((c) => `sha256:${createHash('sha256').update(c).digest('hex')}`).sort());
  await pullImage(server.url, 'crash/app', 'v1');
}, 240_000);
