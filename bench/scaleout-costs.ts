// What the S3 blob store's design choices cost, measured against a real S3 server:
//   1. assembling a finished upload at its content address: a server-side copy (one CopyObject,
//      or UploadPartCopy parts) against streaming the bytes through this node (GET + PUT);
//   2. continuing the digest on a node that did not see the earlier chunks: re-reading the
//      stored upload from S3 and hashing it at completion (the choice), against nothing (the
//      node that received every chunk keeps the running hash in memory).
//
//   bash ../shared/services/ceph-rgw.sh start /tmp/rgw 7480
//   node --import tsx bench/scaleout-costs.ts http://127.0.0.1:7480 [MiB=256]
// Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else ceph-rgw.sh's fixed test keys.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { S3BlobStore } from '../src/storage/s3/s3-blob-store.js';

const MiB = 1024 * 1024;
const endpoint = process.argv[2] ?? 'http://127.0.0.1:7480';
const sizeMiB = Number(process.argv[3] ?? 256);
const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'STOWAGETESTACCESSKEY',
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'stowage-test-secret-key-not-for-production',
};

const store = new S3BlobStore({ bucket: 'stowage-bench-costs', prefix: `run-${Date.now()}`, endpoint, forcePathStyle: true, credentials, partSize: 16 * MiB });
await store.init();

/** An upload of `segments` appends making `sizeMiB` MiB of random data. */
async function stage(segments: number): Promise<{ id: string; digest: string; size: number }> {
  const id = randomUUID();
  await store.createUpload(id);
  const hash = createHash('sha256');
  let offset = 0;
  const segmentSize = Math.ceil((sizeMiB * MiB) / segments);
  for (let s = 0; s < segments; s++) {
    const chunks: Buffer[] = [];
    for (let n = 0; n < segmentSize && offset + n < sizeMiB * MiB; n += MiB) chunks.push(randomBytes(Math.min(MiB, segmentSize - n)));
    for (const chunk of chunks) hash.update(chunk);
    offset = await store.appendUpload(id, Readable.from(chunks), offset);
  }
  return { id, digest: `sha256:${hash.digest('hex')}`, size: offset };
}

async function time<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const result = await work();
  return [result, Number(process.hrtime.bigint() - start) / 1e6];
}

const rate = (ms: number) => `${((sizeMiB / ms) * 1000).toFixed(0)} MiB/s`;
const rows: string[] = [];

for (const segments of [1, 4]) {
  const upload = await stage(segments);
  const [, ms] = await time(() => store.commitUpload(upload.id, upload.digest, upload.size));
  rows.push(`| commit, ${segments} segment(s), server-side copy | ${ms.toFixed(0)} ms | ${rate(ms)} |`);
}

{
  // The streaming alternative: read the upload back and write it to a new object.
  const upload = await stage(1);
  const [, ms] = await time(async () => {
    const target = randomUUID();
    await store.createUpload(target);
    await store.appendUpload(target, await store.readUpload(upload.id, upload.size), 0);
  });
  rows.push(`| commit by streaming through the node (GET + multipart PUT) | ${ms.toFixed(0)} ms | ${rate(ms)} |`);

  // Hash continuation on a node without the running hash: read back and hash everything once.
  const [digest, hashMs] = await time(async () => {
    const hash = createHash('sha256');
    for await (const chunk of await store.readUpload(upload.id, upload.size)) hash.update(chunk as Buffer);
    return `sha256:${hash.digest('hex')}`;
  });
  if (digest !== upload.digest) throw new Error('read-back digest differs');
  rows.push(`| completion on another node: re-read + SHA-256 of the upload | ${hashMs.toFixed(0)} ms | ${rate(hashMs)} |`);
}

console.log(`S3 blob store costs for a ${sizeMiB} MiB blob (${endpoint}):\n`);
console.log('| step | time | throughput |\n|---|---|---|');
for (const row of rows) console.log(row);
console.log(`\nS3 requests: ${JSON.stringify(store.requestCounts())}`);
await store.close();
