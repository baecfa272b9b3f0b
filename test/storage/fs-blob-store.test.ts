import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError, InvalidOffsetError } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs/fs-blob-store.js';
import { blobStoreSuite } from '../shared/blob-store-suite.js';

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'stowage-fs-blob-'));
}

blobStoreSuite('filesystem', async () => {
  const root = await tempRoot();
  return { store: new FsBlobStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('FsBlobStore', () => {
  let root: string;
  let store: FsBlobStore;

  beforeEach(async () => {
    root = await tempRoot();
    store = new FsBlobStore(root);
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function commit(content: Buffer): Promise<{ id: string; digest: string }> {
    const id = randomUUID();
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    await store.createUpload(id);
    await store.appendUpload(id, Readable.from([content]), 0);
    await store.commitUpload(id, digest, content.length);
    return { id, digest };
  }

  it('creates its directories lazily, on a root that does not exist yet', async () => {
    const fresh = new FsBlobStore(join(root, 'not', 'yet'));
    expect(await fresh.stat(`sha256:${'a'.repeat(64)}`)).toBeNull();
    expect(await collect(fresh.list())).toEqual([]);
    expect(await collect(fresh.listUploads())).toEqual([]);
    await fresh.ping();
    await fresh.createUpload(randomUUID());
    expect(await collect(fresh.listUploads())).toHaveLength(1);
  });

  it('refuses path-traversal digests and upload ids before touching the filesystem', async () => {
    const bad = ['sha256:../../etc', `sha256:${'A'.repeat(64)}`, `sha1:${'a'.repeat(40)}`, `sha256:${'a'.repeat(63)}/`];
    for (const digest of bad) {
      for (const call of [
        () => store.stat(digest),
        () => store.open(digest),
        () => store.delete(digest),
      ]) {
        const err = await call().then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(Error);
        expect(err).not.toBeInstanceOf(BlobNotFoundError);
        expect((err as Error).message).toMatch(/invalid digest/);
      }
    }
    const id = randomUUID();
    await store.createUpload(id);
    await expect(store.commitUpload(id, 'sha256:../../etc', 0)).rejects.toThrow(/invalid digest/);

    for (const badId of ['../../etc', `${randomUUID()}/..`, randomUUID().toUpperCase(), '']) {
      await expect(store.createUpload(badId)).rejects.toThrow(/invalid upload id/);
      await expect(store.appendUpload(badId, Readable.from([]), 0)).rejects.toThrow(/invalid upload id/);
      await expect(store.readUpload(badId, 0)).rejects.toThrow(/invalid upload id/);
      await expect(store.abortUpload(badId)).rejects.toThrow(/invalid upload id/);
      await expect(store.commitUpload(badId, `sha256:${'a'.repeat(64)}`, 0)).rejects.toThrow(/invalid upload id/);
    }
    // Only the valid upload was created; nothing escaped the root.
    expect(await readdir(root)).toEqual(['uploads']);
  });

  it('stores blobs at blobs/<algo>/<first two hex>/<hex> and leaves no stray files after commit', async () => {
    const { digest } = await commit(Buffer.from('layout check'));
    await commit(Buffer.from('another one'));
    const hex = digest.slice('sha256:'.length);
    expect((await stat(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex))).isFile()).toBe(true);

    // Every file under blobs/ is a blob at its content address: no temp or partial files.
    const files = await walk(join(root, 'blobs'));
    expect(files).toHaveLength(2);
    for (const file of files) {
      expect(file).toMatch(/^sha256\/([a-f0-9]{2})\/\1[a-f0-9]{62}$/);
    }
    // The staging areas are gone too.
    expect(await readdir(join(root, 'uploads'))).toEqual([]);
  });

  it('truncates the on-disk leftover of an interrupted append', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, Readable.from([Buffer.from('head')]), 0);
    const dropped = Readable.from(
      (async function* () {
        yield Buffer.alloc(100_000, 'X');
        await new Promise((ok) => setTimeout(ok, 50));
        throw new Error('client disconnected');
      })(),
    );
    await expect(store.appendUpload(id, dropped, 4)).rejects.toThrow('client disconnected');
    const data = join(root, 'uploads', id);
    // The scenario is real: the failed append left bytes past the acknowledged offset.
    expect((await stat(data)).size).toBeGreaterThan(4);
    expect(await store.appendUpload(id, Readable.from([Buffer.from('tail')]), 4)).toBe(8);
    expect((await stat(data)).size).toBe(8);
  });

  it('refuses to commit more bytes than the upload holds', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, Readable.from([Buffer.from('short')]), 0);
    const err = await store.commitUpload(id, `sha256:${'b'.repeat(64)}`, 10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOffsetError);
    expect(err).toMatchObject({ uploadId: id, expected: 10, actual: 5 });
    expect(await store.stat(`sha256:${'b'.repeat(64)}`)).toBeNull();
  });

  it('keeps each upload as one file under uploads/, removed by commit or abort', async () => {
    const committed = randomUUID();
    const aborted = randomUUID();
    await store.createUpload(committed);
    await store.createUpload(aborted);
    expect((await readdir(join(root, 'uploads'))).sort()).toEqual([committed, aborted].sort());
    await store.appendUpload(committed, Readable.from([Buffer.from('abc')]), 0);
    await store.commitUpload(committed, `sha256:${createHash('sha256').update('abc').digest('hex')}`, 3);
    await store.abortUpload(aborted);
    expect(await readdir(join(root, 'uploads'))).toEqual([]);
  });

  it('ignores foreign files when listing', async () => {
    const { digest } = await commit(Buffer.from('real blob'));
    await mkdir(join(root, 'blobs', 'sha256', 'zz'), { recursive: true });
    await mkdir(join(root, 'uploads', 'not-a-uuid'), { recursive: true });
    expect((await collect(store.list())).map((b) => b.digest)).toEqual([digest]);
    expect(await collect(store.listUploads())).toEqual([]);
  });
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Relative paths of all files under `dir`. */
async function walk(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walk(join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out;
}
