import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/storage/s3/s3-blob-store.js';
import { blobStoreSuite } from '../shared/blob-store-suite.js';
import { s3Service, uniqueBucket, uniqueName } from '../support/services.js';

// Ceph RGW started by the global setup; this file's own bucket, a fresh key prefix per test.
const bucket = uniqueBucket('blob-store');

function options(extra: Partial<S3BlobStoreOptions> = {}): S3BlobStoreOptions {
  const s3 = s3Service();
  return {
    bucket,
    prefix: uniqueName('t'),
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    ...extra,
  };
}

async function openStore(extra: Partial<S3BlobStoreOptions> = {}): Promise<S3BlobStore> {
  const store = new S3BlobStore(options(extra));
  await store.init();
  return store;
}

blobStoreSuite('S3 (Ceph RGW)', async () => ({ store: await openStore(), cleanup: async () => undefined }));

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

async function keys(client: S3Client, prefix: string, bucketName = bucket): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucketName, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!.slice(prefix.length));
}

describe('S3BlobStore', () => {
  let store: S3BlobStore;
  let prefix: string;
  beforeAll(async () => {
    const opts = options({ partSize: 5 * MiB });
    prefix = `${opts.prefix}/`;
    store = new S3BlobStore(opts);
    await store.init();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('creates a missing bucket at start, and refuses to when told not to', async () => {
    const s3 = s3Service();
    const fresh = uniqueBucket('auto-create');
    const created = await openStore({ bucket: fresh });
    await created.ping();
    await created.client.send(new HeadBucketCommand({ Bucket: fresh }));
    // A second node starting against the same bucket finds it there.
    const second = await openStore({ bucket: fresh });
    await second.close();
    await created.close();

    const missing = new S3BlobStore({ ...options({ bucket: uniqueBucket('never'), createBucket: false }) });
    await expect(missing.init()).rejects.toThrow(/does not exist \(and creating it is disabled\)/);
    await missing.close();
    expect(s3.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('streams a large append as a multipart upload and commits it with a server-side copy', async () => {
    const content = randomBytes(12 * MiB + 12345);
    const digest = sha256(content);
    const id = randomUUID();
    await store.createUpload(id);
    const before = store.requestCounts();
    // Many small chunks, as a socket delivers them.
    const chunks = Array.from({ length: Math.ceil(content.length / 65536) }, (_, i) => content.subarray(i * 65536, (i + 1) * 65536));
    expect(await store.appendUpload(id, Readable.from(chunks), 0)).toBe(content.length);
    const during = diff(before, store.requestCounts());
    expect(during).toMatchObject({ CreateMultipartUpload: 1, UploadPart: 3, CompleteMultipartUpload: 1 });
    expect(during.PutObject ?? 0).toBe(0);

    await store.commitUpload(id, digest, content.length);
    const commit = diff(before, store.requestCounts());
    expect(commit.CopyObject).toBe(1); // one segment: copied by the server, not through this node
    expect(commit.GetObject ?? 0).toBe(0);
    expect(await store.stat(digest)).toEqual({ size: content.length });
    expect(sha256(await readAll(await store.open(digest)))).toBe(digest);
    expect(await keys(store.client, `${prefix}uploads/`)).toEqual([]);
  });

  it('writes an append of exactly one part with a single PutObject', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    const before = store.requestCounts();
    const part = randomBytes(5 * MiB);
    const halves = [part.subarray(0, 3 * MiB), part.subarray(3 * MiB)];
    expect(await store.appendUpload(id, Readable.from(halves), 0)).toBe(part.length);
    expect(diff(before, store.requestCounts())).toEqual({ ListObjectsV2: 1, PutObject: 1 });
    await store.abortUpload(id);
  });

  it('assembles several appends with UploadPartCopy for big segments and streams small ones', async () => {
    const sizes = [6 * MiB, 100_000, 200_000, 7 * MiB + 3, 5];
    const parts = sizes.map((n) => randomBytes(n));
    const content = Buffer.concat(parts);
    const id = randomUUID();
    await store.createUpload(id);
    let offset = 0;
    for (const part of parts) offset = await store.appendUpload(id, Readable.from([part]), offset);
    expect(offset).toBe(content.length);
    const before = store.requestCounts();
    await store.commitUpload(id, sha256(content), content.length);
    const commit = diff(before, store.requestCounts());
    expect(commit.UploadPartCopy).toBeGreaterThanOrEqual(1);
    expect(commit.CompleteMultipartUpload).toBe(1);
    // (Buffers compared with equals(): deep equality of MiBs takes minutes.)
    expect((await readAll(await store.open(sha256(content)))).equals(content)).toBe(true);
    // A range across the segment boundaries.
    const start = 6 * MiB - 10;
    const end = 6 * MiB + 300_010;
    expect((await readAll(await store.open(sha256(content), { start, end }))).equals(content.subarray(start, end + 1))).toBe(true);
  });

  it('keeps nothing of an append interrupted mid-stream, even past one part', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    const head = randomBytes(1000);
    await store.appendUpload(id, Readable.from([head]), 0);
    const failing = Readable.from(
      (async function* () {
        for (let i = 0; i < 12; i++) yield randomBytes(MiB); // more than two 5 MiB parts
        throw new Error('client disconnected');
      })(),
    );
    await expect(store.appendUpload(id, failing, head.length)).rejects.toThrow('client disconnected');
    // The multipart upload was aborted and no segment object appeared.
    const uploads = await store.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}uploads/${id}/` }));
    expect(uploads.Uploads ?? []).toEqual([]);
    expect(await keys(store.client, `${prefix}uploads/${id}/`)).toEqual(['0000000000000000']);
    expect(await readAll(await store.readUpload(id, head.length))).toEqual(head);
    await store.abortUpload(id);
  });

  it('aborts multipart uploads abandoned by a crash, only once they are older than the cutoff', async () => {
    const key = `${prefix}uploads/${randomUUID()}/0000000000000000`;
    const created = await store.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await store.client.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: 1, Body: randomBytes(1024), ContentLength: 1024 }),
    );
    const list = async () =>
      ((await store.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads ?? []).map((u) => u.UploadId);
    expect(await list()).toContain(created.UploadId);

    expect(await store.abortStaleWrites(new Date(Date.now() - 60_000))).toBe(0);
    expect(await list()).toContain(created.UploadId);
    expect(await store.abortStaleWrites(new Date(Date.now() + 60_000))).toBeGreaterThanOrEqual(1);
    expect(await list()).not.toContain(created.UploadId);
  });

  it('asks the object store for server-side encryption on every write when configured', async () => {
    // The test RGW has no SSE backend configured, so it refuses the header: proof that it is sent.
    const encrypted = await openStore({ serverSideEncryption: 'AES256' });
    const error = await encrypted.createUpload(randomUUID()).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'InvalidRequest', $metadata: { httpStatusCode: 400 } });
    await encrypted.close();
  });

  it('answers redirectUrl with a working pre-signed URL only when redirects are on', async () => {
    const content = randomBytes(4096);
    const digest = sha256(content);
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, Readable.from([content]), 0);
    await store.commitUpload(id, digest, content.length);
    expect(await store.redirectUrl(digest)).toBeNull();

    const redirecting = new S3BlobStore({ ...options({ redirectExpiresIn: 60 }), prefix });
    const url = await redirecting.redirectUrl(digest);
    expect(url).toMatch(/X-Amz-Signature=/);
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(content);
    // The same URL, tampered with, is refused by the object store.
    const tampered = await fetch(url!.replace(/X-Amz-Expires=\d+/, 'X-Amz-Expires=99999'));
    expect(tampered.status).toBe(403);
    await redirecting.close();
  });
});

function diff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(after)) if (n - (before[name] ?? 0) > 0) out[name] = n - (before[name] ?? 0);
  return out;
}
