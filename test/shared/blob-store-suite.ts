import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobNotFoundError,
  InvalidOffsetError,
  UploadNotFoundError,
  type BlobStore,
} from '../../src/storage/blob-store.js';

export interface BlobStoreFixture {
  store: BlobStore;
  cleanup: () => Promise<void>;
}

/**
 * The BlobStore contract, run unchanged against every backend: a backend's test file is a
 * constructor and one call to this function. `create` must return an empty store.
 */
export function blobStoreSuite(name: string, create: () => Promise<BlobStoreFixture>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let store: BlobStore;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      ({ store, cleanup } = await create());
    });

    afterEach(async () => {
      await store.close();
      await cleanup?.();
      cleanup = undefined;
    });

    /** Creates an upload holding `content` (in one append) and returns its id. */
    async function stage(content: Buffer): Promise<string> {
      const id = randomUUID();
      await store.createUpload(id);
      expect(await store.appendUpload(id, streamOf(content), 0)).toBe(content.length);
      return id;
    }

    /** Uploads and commits `content`, returning its digest. */
    async function put(content: Buffer): Promise<string> {
      const digest = sha256(content);
      await store.commitUpload(await stage(content), digest, content.length);
      return digest;
    }

    it('commits an upload, then stats it and reads it whole and by inclusive range', async () => {
      const content = Buffer.from('hello, content-addressed world');
      const digest = await put(content);

      expect(await store.stat(digest)).toEqual({ size: content.length });
      expect(await readAll(await store.open(digest))).toEqual(content);
      expect(await readAll(await store.open(digest, { start: 0, end: 4 }))).toEqual(Buffer.from('hello'));
      expect(await readAll(await store.open(digest, { start: 7, end: 7 }))).toEqual(Buffer.from('c'));
      const last = content.length - 1;
      expect(await readAll(await store.open(digest, { start: 7, end: last }))).toEqual(content.subarray(7));
    });

    it('stores an empty blob', async () => {
      const digest = await put(Buffer.alloc(0));
      expect(await store.stat(digest)).toEqual({ size: 0 });
      expect(await readAll(await store.open(digest))).toEqual(Buffer.alloc(0));
    });

    it('builds an upload from several appends', async () => {
      const id = randomUUID();
      await store.createUpload(id);
      expect(await store.appendUpload(id, streamOf(Buffer.from('abc')), 0)).toBe(3);
      expect(await store.appendUpload(id, streamOf(Buffer.from('')), 3)).toBe(3);
      expect(await store.appendUpload(id, streamOf(Buffer.from('defg')), 3)).toBe(7);
      expect(await readAll(await store.readUpload(id, 7))).toEqual(Buffer.from('abcdefg'));
    });

    it('keeps a blob invisible until it is committed', async () => {
      const content = Buffer.from('not yet');
      const digest = sha256(content);
      const id = await stage(content);

      expect(await store.stat(digest)).toBeNull();
      await expect(store.open(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
      expect((await collect(store.list())).map((b) => b.digest)).not.toContain(digest);

      await store.commitUpload(id, digest, content.length);
      expect(await store.stat(digest)).toEqual({ size: content.length });
    });

    it('refuses an append past the stored size with InvalidOffsetError', async () => {
      const id = await stage(Buffer.from('12345'));
      const err = await store.appendUpload(id, streamOf(Buffer.from('x')), 10).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOffsetError);
      expect(err).toMatchObject({ uploadId: id, expected: 10, actual: 5 });
      // Nothing was written by the refused append.
      expect(await readAll(await store.readUpload(id, 5))).toEqual(Buffer.from('12345'));
    });

    it('discards the leftover of an interrupted append when appending at the acknowledged offset', async () => {
      const id = randomUUID();
      await store.createUpload(id);
      const head = Buffer.from('acknowledged-');
      expect(await store.appendUpload(id, streamOf(head), 0)).toBe(head.length);

      // The client sends some bytes, then disconnects: the append rejects and nothing past
      // `head.length` was acknowledged. The garbage is longer than what follows, so a store that
      // overwrote without discarding would keep a tail of it.
      const garbage = Buffer.alloc(64 * 1024, 'X');
      await expect(store.appendUpload(id, failingStream(garbage), head.length)).rejects.toThrow(
        'client disconnected',
      );

      const tail = Buffer.from('tail');
      expect(await store.appendUpload(id, streamOf(tail), head.length)).toBe(head.length + tail.length);
      const content = Buffer.concat([head, tail]);
      expect(await readAll(await store.readUpload(id, content.length))).toEqual(content);
      // The leftover is really gone, not just hidden: exactly content.length bytes are stored.
      const err = await store
        .appendUpload(id, streamOf(Buffer.from('x')), content.length + 1)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOffsetError);
      expect(err).toMatchObject({ expected: content.length + 1, actual: content.length });

      const digest = sha256(content);
      await store.commitUpload(id, digest, content.length);
      expect(await store.stat(digest)).toEqual({ size: content.length });
      expect(await readAll(await store.open(digest))).toEqual(content);
    });

    it('throws UploadNotFoundError for an unknown upload', async () => {
      const id = randomUUID();
      await expect(store.appendUpload(id, streamOf(Buffer.from('x')), 0)).rejects.toBeInstanceOf(
        UploadNotFoundError,
      );
      await expect(store.readUpload(id, 0)).rejects.toBeInstanceOf(UploadNotFoundError);
      const content = Buffer.from('never staged');
      await expect(store.commitUpload(id, sha256(content), content.length)).rejects.toBeInstanceOf(
        UploadNotFoundError,
      );
    });

    it('throws BlobNotFoundError when opening a missing blob, and stats it as null', async () => {
      const digest = sha256(Buffer.from('missing'));
      const err = await store.open(digest).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobNotFoundError);
      expect(err).toMatchObject({ digest });
      await expect(store.open(digest, { start: 0, end: 1 })).rejects.toBeInstanceOf(BlobNotFoundError);
      expect(await store.stat(digest)).toBeNull();
    });

    it('commits idempotently when the blob already exists', async () => {
      const content = Buffer.from('same bytes, pushed twice');
      const digest = sha256(content);
      const first = await stage(content);
      await store.commitUpload(first, digest, content.length);
      // A retry of the same commit succeeds.
      await store.commitUpload(first, digest, content.length);

      // A second upload of the same content commits too, and its staging area is gone.
      const second = await stage(content);
      await store.commitUpload(second, digest, content.length);
      const ids = (await collect(store.listUploads())).map((u) => u.id);
      expect(ids).not.toContain(first);
      expect(ids).not.toContain(second);
      await expect(store.readUpload(second, 0)).rejects.toBeInstanceOf(UploadNotFoundError);

      expect(await store.stat(digest)).toEqual({ size: content.length });
      expect(await readAll(await store.open(digest))).toEqual(content);
    });

    it('commits only the first `size` bytes of an upload', async () => {
      const id = await stage(Buffer.from('keep-this|drop-this'));
      const kept = Buffer.from('keep-this');
      const digest = sha256(kept);
      await store.commitUpload(id, digest, kept.length);
      expect(await store.stat(digest)).toEqual({ size: kept.length });
      expect(await readAll(await store.open(digest))).toEqual(kept);
    });

    it('deletes idempotently', async () => {
      const content = Buffer.from('to be deleted');
      const digest = await put(content);
      const other = await put(Buffer.from('to be kept'));

      await store.delete(digest);
      expect(await store.stat(digest)).toBeNull();
      await expect(store.open(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
      await store.delete(digest);
      await store.delete(sha256(Buffer.from('never stored')));
      expect(await store.stat(other)).not.toBeNull();
    });

    it('lists every blob with its size', async () => {
      expect(await collect(store.list())).toEqual([]);
      const a = Buffer.from('first blob');
      const b = Buffer.from('second, longer blob');
      const c = Buffer.from('sha512 blob');
      await put(a);
      await put(b);
      const c512 = `sha512:${createHash('sha512').update(c).digest('hex')}`;
      await store.commitUpload(await stage(c), c512, c.length);
      // An uncommitted upload is not a blob.
      await stage(Buffer.from('staged only'));

      const listed = (await collect(store.list())).sort((x, y) => x.digest.localeCompare(y.digest));
      const expected = [
        { digest: sha256(a), size: a.length },
        { digest: sha256(b), size: b.length },
        { digest: c512, size: c.length },
      ].sort((x, y) => x.digest.localeCompare(y.digest));
      expect(listed).toEqual(expected);

      await store.delete(sha256(a));
      expect((await collect(store.list())).map((x) => x.digest)).not.toContain(sha256(a));
    });

    it('lists uploads with the time they were last written', async () => {
      expect(await collect(store.listUploads())).toEqual([]);
      const before = Date.now();
      const a = randomUUID();
      const b = randomUUID();
      await store.createUpload(a);
      await store.createUpload(b);
      await store.appendUpload(b, streamOf(Buffer.from('data')), 0);

      const uploads = await collect(store.listUploads());
      expect(uploads.map((u) => u.id).sort()).toEqual([a, b].sort());
      for (const u of uploads) {
        expect(u.modifiedAt).toBeInstanceOf(Date);
        // Generous bounds: filesystem and object-store clocks have coarse resolution.
        expect(u.modifiedAt.getTime()).toBeGreaterThanOrEqual(before - 5_000);
        expect(u.modifiedAt.getTime()).toBeLessThanOrEqual(Date.now() + 5_000);
      }
    });

    it('removes an upload and its data on abort, idempotently', async () => {
      const id = await stage(Buffer.from('abandoned'));
      await store.abortUpload(id);

      expect((await collect(store.listUploads())).map((u) => u.id)).not.toContain(id);
      await expect(store.readUpload(id, 0)).rejects.toBeInstanceOf(UploadNotFoundError);
      await expect(store.appendUpload(id, streamOf(Buffer.from('more')), 9)).rejects.toBeInstanceOf(
        UploadNotFoundError,
      );
      await store.abortUpload(id);
      await store.abortUpload(randomUUID());
    });

    it('reads back the first `size` bytes of an upload', async () => {
      const content = Buffer.from('0123456789');
      const id = await stage(content);
      expect(await readAll(await store.readUpload(id, 4))).toEqual(Buffer.from('0123'));
      expect(await readAll(await store.readUpload(id, 10))).toEqual(content);
      expect(await readAll(await store.readUpload(id, 0))).toEqual(Buffer.alloc(0));
    });

    it('streams a multi-MiB blob in and out with the same sha256', async () => {
      const chunkSize = 256 * 1024;
      const chunks = Array.from({ length: 32 }, () => randomBytes(chunkSize)); // 8 MiB
      const total = chunkSize * chunks.length;
      const hash = createHash('sha256');
      for (const chunk of chunks) hash.update(chunk);
      const digest = `sha256:${hash.digest('hex')}`;

      // Two appends of uneven size, each a stream of many chunks.
      const id = randomUUID();
      await store.createUpload(id);
      const split = 20;
      const firstSize = chunkSize * split;
      expect(await store.appendUpload(id, Readable.from(chunks.slice(0, split)), 0)).toBe(firstSize);
      expect(await store.appendUpload(id, Readable.from(chunks.slice(split)), firstSize)).toBe(total);
      expect(await sha256OfStream(await store.readUpload(id, total))).toBe(digest);
      await store.commitUpload(id, digest, total);

      expect(await store.stat(digest)).toEqual({ size: total });
      expect(await sha256OfStream(await store.open(digest))).toBe(digest);

      // A range spanning a chunk boundary, well past the first MiB.
      const start = 5 * chunkSize - 100;
      const end = 5 * chunkSize + 99;
      const expected = Buffer.concat([chunks[4]!.subarray(chunkSize - 100), chunks[5]!.subarray(0, 100)]);
      expect(await readAll(await store.open(digest, { start, end }))).toEqual(expected);
      // The very last byte.
      const lastByte = chunks[chunks.length - 1]!.subarray(chunkSize - 1);
      expect(await readAll(await store.open(digest, { start: total - 1, end: total - 1 }))).toEqual(lastByte);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

function sha256(content: Buffer): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

function streamOf(content: Buffer): Readable {
  return Readable.from(content.length > 0 ? [content] : []);
}

/** Sends `head`, waits until it has likely reached storage, then fails like a dropped client. */
function failingStream(head: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield head;
      await sleep(50);
      throw new Error('client disconnected');
    })(),
  );
}

// Tests only: collecting small reads into memory is fine here.
async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

async function sha256OfStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Uint8Array);
  return `sha256:${hash.digest('hex')}`;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
