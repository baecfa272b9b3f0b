// GC concurrency stress on the scale-out backends: three nodes on one PostgreSQL database and one
// S3 bucket (Ceph RGW); clients and GC runs spread over all nodes. See stress.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { openBlobStore } from '../../src/storage/index.js';
import { startScaleOut, type ScaleOut } from '../support/scaleout.js';
import { GcStress } from './stress.js';

let cluster: ScaleOut;

beforeAll(async () => {
  cluster = await startScaleOut('gcstress', 3, { STOWAGE_GC_GRACE: '1s', STOWAGE_GC_UNSAFE_SHORT_GRACE: 'true' });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

it('three nodes: pushes, tag moves, mounts and pulls under continuous GC lose nothing; GC leaves no garbage', async () => {
  const stress = new GcStress(cluster.nodes.map((n) => n.url));
  const report = await stress.run(25_000, 4);
  expect(report.failures).toEqual([]);
  const result = await stress.verify();
  console.log('gc stress (3 nodes, PostgreSQL + S3):', JSON.stringify({ ...report, ...result }));
  expect(report.gcRuns).toBeGreaterThan(3);
  expect(report.pushes).toBeGreaterThan(10);
  expect(report.blobsFreed).toBeGreaterThan(0);
  expect(result.left).toBe(0);

  // The bucket and the database agree: every row has its object, every object its row, no row
  // is left marked.
  const client = new pg.Client({ connectionString: cluster.database.url });
  await client.connect();
  const rows = (await client.query<{ digest: string; deleting_since: string | null }>('select digest, deleting_since from blobs')).rows;
  await client.end();
  expect(rows.filter((r) => r.deleting_since !== null)).toEqual([]);
  const scratch = mkdtempSync(join(tmpdir(), 'stowage-gc-check-'));
  // The S3 client reads its credentials from the process environment.
  process.env.AWS_ACCESS_KEY_ID = cluster.env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = cluster.env.AWS_SECRET_ACCESS_KEY;
  const store = await openBlobStore(loadConfig({ env: { ...cluster.env, STOWAGE_DATA_DIR: scratch } }));
  const stored: string[] = [];
  for await (const blob of store.list()) stored.push(blob.digest);
  await store.close();
  rmSync(scratch, { recursive: true, force: true });
  expect(stored.sort()).toEqual(rows.map((r) => r.digest).sort());
}, 180_000);
