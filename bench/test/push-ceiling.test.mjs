// The push ceiling: the upload sink speaks enough of the upload protocol for the bench client,
// and the report reads each registry's push rate against it. node --test bench/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUploadSink } from '../lib/ceilings.mjs';
import { createClient } from '../lib/oci.mjs';
import { repeatingBlob } from '../lib/data.mjs';
import { buildRows } from '../lib/report.mjs';

test('the upload sink takes monolithic, chunked and small-image pushes and keeps nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sink-'));
  const sink = await startUploadSink(dir);
  const client = createClient(sink.url);
  try {
    const blob = repeatingBlob(5 * 2 ** 20, 2 ** 20);
    await blob.computeDigest();
    assert.ok((await client.pushBlob('bench/push', blob)) > 0);
    assert.ok((await client.pushBlobChunked('bench/push', blob, 2 * 2 ** 20)) > 0);
    assert.deepEqual(readdirSync(dir), []);
    const r = await client.request('PATCH', '/v2/bench/push/blobs/uploads/999', { body: Buffer.from('x') });
    assert.equal(r.status, 404, 'a PATCH of an upload that was never started fails');
    // The small-images workload's requests: a HEAD miss, then a blob and a manifest push.
    const small = repeatingBlob(4096, 4096);
    await small.computeDigest();
    assert.equal(await client.ensureBlob('bench/small', small), true);
    assert.equal((await client.request('PUT', '/v2/bench/small/manifests/v1', { body: Buffer.from('{}') })).status, 201);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    client.close();
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('push rows carry the ceiling median and each side\'s share of it', () => {
  const rounds = [
    { A: { mbps: 200 }, B: { mbps: 100 }, C: { mbps: 400 } },
    { A: { mbps: 300 }, B: { mbps: 150 }, C: { mbps: 300 } },
  ];
  const [row] = buildRows({
    meta: { labels: { A: 'Stowage', B: 'Distribution' } },
    workloads: [{ id: 'push-monolithic', metrics: [{ key: 'mbps', label: 'push', unit: 'MB/s', better: 'higher' }], rounds }],
  });
  assert.equal(row.ceilingMedian, 350);
  assert.equal(row.ceilingFractionMedian, 0.75); // 0.5 and 1.0
  assert.match(row.notes, /ceiling \(simplest durable push server, same rounds\) 350 MB\/s; Stowage at 75% of it \(50%–100%\), Distribution at 38%/);
});
