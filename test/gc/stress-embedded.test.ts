// GC concurrency stress on the embedded backends (filesystem + SQLite), two HTTP worker
// processes sharing the database: see stress.ts. Bounded: 25 s of load.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';
import { GcStress } from './stress.js';

let server: RunningStowage;

beforeAll(async () => {
  server = await startStowage({ env: { STOWAGE_WORKERS: '2', STOWAGE_GC_GRACE: '1s', STOWAGE_GC_UNSAFE_SHORT_GRACE: 'true' } });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (server) rmSync(server.dataDir, { recursive: true, force: true });
});

it('pushes, tag moves, mounts and pulls under continuous GC lose nothing; GC leaves no garbage', async () => {
  const stress = new GcStress([server.url]);
  const report = await stress.run(25_000, 4);
  expect(report.failures).toEqual([]);
  const result = await stress.verify();
  console.log('gc stress (embedded):', JSON.stringify({ ...report, ...result }));
  expect(report.gcRuns).toBeGreaterThan(5);
  expect(report.pushes).toBeGreaterThan(20);
  expect(report.blobsFreed).toBeGreaterThan(0);
  expect(result.images).toBeGreaterThan(0);
  expect(result.left).toBe(0);

  // Storage and metadata agree: every live blob row has its bytes, every stored blob has a row,
  // and no row is left marked (the last run swept them all).
  const db = new BetterSqlite3(join(server.dataDir, 'stowage.db'), { readonly: true });
  const rows = db.prepare('select digest, deleting_since from blobs').all() as { digest: string; deleting_since: number | null }[];
  db.close();
  expect(rows.filter((r) => r.deleting_since !== null)).toEqual([]);
  const stored = new Set<string>();
  const root = join(server.dataDir, 'storage', 'blobs', 'sha256');
  for (const prefix of readdirSync(root)) for (const hex of readdirSync(join(root, prefix))) stored.add(`sha256:${hex}`);
  expect([...stored].sort()).toEqual(rows.map((r) => r.digest).sort());
}, 120_000);
