import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, open, readdir, rename, rm, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobNotFoundError,
  InvalidOffsetError,
  UploadNotFoundError,
  type BlobStore,
  type ByteRange,
} from '../blob-store.js';
import { copyable } from './file-copy.js';

// 1 MiB buffers: streaming with Node's 64 KiB default is about 3x slower on these machines.
const HIGH_WATER_MARK = 1024 * 1024;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALGORITHMS = ['sha256', 'sha512'];
/**
 * Blobs up to this size whose bytes arrive in one request are written whole (`putBlob`): held in
 * memory meanwhile, then one file written, fsync'd and renamed into place, with no staging file
 * created at the session's start and no streaming machinery.
 */
const WHOLE_BLOB_LIMIT = 1024 * 1024;

// Callback-style fs calls (no FileHandle object per file, which costs more than the small
// writes of the whole-blob path themselves).
const openFd = promisify(fs.open);
const writeFd = promisify(fs.write);
const fsyncFd = promisify(fs.fsync);
const closeFd = promisify(fs.close);

/**
 * BlobStore on a local filesystem.
 *
 *   root/blobs/<algo>/<first two hex>/<hex>   committed blobs
 *   root/uploads/<id>                         upload staging (same filesystem, so commit is a rename)
 *   root/tmp/                                 scratch for ping()
 *
 * The constructor does no I/O: directories are created lazily, when first written to.
 */
export class FsBlobStore implements BlobStore {
  private readonly root: string;
  /** Directories known to exist, so hot paths skip mkdir (they are never removed while running). */
  private readonly knownDirs = new Set<string>();
  /** Open descriptors of blob directories, kept to fsync them after each rename into them. */
  private readonly dirDescriptors = new Map<string, Promise<number>>();
  /** Largest blob `putBlob` takes. */
  readonly wholeBlobLimit = WHOLE_BLOB_LIMIT;

  constructor(root: string) {
    // Absolute, so the paths mkdir reports compare equal to ours (see mkdirDurable).
    this.root = resolve(root);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const s = await statOrNull(this.blobPath(digest));
    return s?.isFile() ? { size: s.size } : null;
  }

  async open(digest: string, range?: ByteRange): Promise<Readable> {
    // Open the descriptor first so a missing blob is a typed error, not a stream error later.
    const handle = await open(this.blobPath(digest), 'r').catch((err: unknown) => {
      throw isErrno(err, 'ENOENT') ? new BlobNotFoundError(digest) : err;
    });
    try {
      const stream = handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: HIGH_WATER_MARK });
      return copyable(stream, handle, range?.start ?? 0, range?.end);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async delete(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  async *list(): AsyncIterable<{ digest: string; size: number }> {
    for (const algo of ALGORITHMS) {
      const algoDir = join(this.root, 'blobs', algo);
      for (const prefix of await readdirOrEmpty(algoDir)) {
        for (const hex of await readdirOrEmpty(join(algoDir, prefix))) {
          const digest = `${algo}:${hex}`;
          if (!DIGEST.test(digest) || !hex.startsWith(prefix)) continue; // not ours
          const found = await this.stat(digest); // null when deleted meanwhile
          if (found) yield { digest, size: found.size };
        }
      }
    }
  }

  async createUpload(id: string): Promise<void> {
    const path = this.uploadData(id);
    await this.ensureDir(dirname(path));
    // 'w': staging is created lazily (see UploadService), so an append that was cut short before
    // anything was acknowledged may have left a file behind; the session starts empty again.
    await writeFile(path, '', { flag: 'w' });
  }

  /**
   * A whole verified blob: written to a staging file of its own (a fresh id, so a crash leaves
   * only staging data that the upload expiry removes), fsync'd, then renamed to its content
   * address like a committed upload. A blob already there has these very bytes.
   */
  async putBlob(digest: string, data: Buffer): Promise<void> {
    if (data.length > WHOLE_BLOB_LIMIT) throw new Error(`filesystem blob store: putBlob takes at most ${WHOLE_BLOB_LIMIT} bytes, got ${data.length}`);
    const target = this.blobPath(digest);
    if (await this.stat(digest)) return;
    const staging = this.uploadData(randomUUID());
    await this.ensureDir(dirname(staging));
    const fd = await openFd(staging, 'wx');
    try {
      for (let written = 0; written < data.length; ) {
        written += (await writeFd(fd, data, written, data.length - written, written)).bytesWritten;
      }
      // Data must be on disk before the name points to it, or a crash could expose a partial blob.
      await fsyncFd(fd);
    } catch (error) {
      await closeFd(fd).catch(() => undefined);
      await rm(staging, { force: true });
      throw error;
    }
    await closeFd(fd);
    await this.publish(staging, target);
  }

  async appendUpload(id: string, data: Readable, offset: number): Promise<number> {
    const path = this.uploadData(id);
    const stored = await this.uploadSize(id);
    if (stored < offset) throw new InvalidOffsetError(id, offset, stored);
    // Bytes past offset are the leftover of an interrupted append that was never acknowledged.
    if (stored > offset) await truncate(path, offset);
    // 'r+' rather than 'a': never recreate an upload aborted meanwhile; write exactly at offset.
    const handle = await open(path, 'r+').catch((err: unknown) => {
      throw isErrno(err, 'ENOENT') ? new UploadNotFoundError(id) : err;
    });
    const out = handle.createWriteStream({ start: offset, highWaterMark: HIGH_WATER_MARK });
    const stopFlushing = flushInBackground(handle);
    // A source error (client gone) rejects here; the next append truncates what was written.
    await pipeline(data, out)
      .catch((err: unknown) => {
        throw isErrno(err, 'ENOENT') ? new UploadNotFoundError(id) : err; // aborted meanwhile
      })
      .finally(stopFlushing);
    return offset + out.bytesWritten;
  }

  async readUpload(id: string, size: number): Promise<Readable> {
    const handle = await open(this.uploadData(id), 'r').catch((err: unknown) => {
      throw isErrno(err, 'ENOENT') ? new UploadNotFoundError(id) : err;
    });
    try {
      const stored = (await handle.stat()).size;
      if (stored < size) throw new InvalidOffsetError(id, size, stored);
      if (size === 0) {
        await handle.close();
        return Readable.from([]);
      }
      return handle.createReadStream({ start: 0, end: size - 1, highWaterMark: HIGH_WATER_MARK });
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  async commitUpload(id: string, digest: string, size: number): Promise<void> {
    const target = this.blobPath(digest);
    const source = this.uploadData(id);
    // Content addressing: an existing blob has these very bytes, so a retry or a duplicate
    // upload only has to clean up.
    if (await this.stat(digest)) {
      await rm(source, { force: true });
      return;
    }
    const handle = await open(source, 'r+').catch((err: unknown) => {
      throw isErrno(err, 'ENOENT') ? new UploadNotFoundError(id) : err;
    });
    try {
      const stored = (await handle.stat()).size;
      if (stored < size) throw new InvalidOffsetError(id, size, stored);
      if (stored > size) await handle.truncate(size);
      // Data must be on disk before the name points to it, or a crash could expose a partial blob.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.publish(source, target);
  }

  /** Renames fsync'd staging data to its content address, durably. */
  private async publish(source: string, target: string): Promise<void> {
    const dir = dirname(target);
    await this.ensureDir(dir, true);
    await rename(source, target); // atomic: the blob is either absent or complete
    await fsyncFd(await this.dirDescriptor(dir)); // make the new name itself durable before acknowledging
  }

  /** A descriptor of a blob directory, opened once and kept (a few hundred at most). */
  private dirDescriptor(dir: string): Promise<number> {
    let fd = this.dirDescriptors.get(dir);
    if (!fd) {
      fd = openFd(dir, 'r');
      this.dirDescriptors.set(dir, fd);
      fd.catch(() => this.dirDescriptors.delete(dir));
    }
    return fd;
  }

  async abortUpload(id: string): Promise<void> {
    await rm(this.uploadData(id), { force: true });
  }

  async *listUploads(): AsyncIterable<{ id: string; modifiedAt: Date }> {
    for (const id of await readdirOrEmpty(join(this.root, 'uploads'))) {
      if (!UPLOAD_ID.test(id)) continue;
      const s = await statOrNull(this.uploadData(id)); // null when completed meanwhile
      if (s) yield { id, modifiedAt: s.mtime };
    }
  }

  async ping(): Promise<void> {
    const dir = join(this.root, 'tmp');
    await mkdir(dir, { recursive: true });
    const probe = join(dir, `ping-${randomUUID()}`);
    await writeFile(probe, 'ping');
    await rm(probe, { force: true });
  }

  async close(): Promise<void> {
    // Only the directory descriptors are held open between calls.
    const open = [...this.dirDescriptors.values()];
    this.dirDescriptors.clear();
    await Promise.all(open.map((fd) => fd.then(closeFd, () => undefined)));
  }

  private blobPath(digest: string): string {
    // Callers validate digests, but a path is built from it: refuse anything else here too.
    if (!DIGEST.test(digest)) throw new Error(`invalid digest: ${JSON.stringify(digest)}`);
    const [algo, hex] = digest.split(':') as [string, string];
    return join(this.root, 'blobs', algo, hex.slice(0, 2), hex);
  }

  private uploadData(id: string): string {
    // Callers validate ids, but a path is built from it: refuse anything else here too.
    if (!UPLOAD_ID.test(id)) throw new Error(`invalid upload id: ${JSON.stringify(id)}`);
    return join(this.root, 'uploads', id);
  }

  /** mkdir -p once per directory and process; `durable` also fsyncs the parents it created. */
  private async ensureDir(dir: string, durable = false): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    if (durable) await mkdirDurable(dir);
    else await mkdir(dir, { recursive: true });
    this.knownDirs.add(dir);
  }

  private async uploadSize(id: string): Promise<number> {
    const s = await statOrNull(this.uploadData(id));
    if (!s) throw new UploadNotFoundError(id);
    return s.size;
  }
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/**
 * stat, or null when nothing is at `path`. Through the callback API: fs/promises captures a
 * stack trace for every error, which made the common answer "not there" (a new blob, before it
 * is written) cost 41-44 us of CPU instead of 26-27 (a loop of stats of missing files).
 */
function statOrNull(path: string): Promise<fs.Stats | null> {
  return new Promise((resolve, reject) => {
    fs.stat(path, (err, stats) => (err ? (err.code === 'ENOENT' ? resolve(null) : reject(err)) : resolve(stats)));
  });
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** mkdir -p, then fsync the parent of every directory it created so their entries survive a crash. */
async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = dir; dirname(d) !== d; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === first) break;
  }
}

/**
 * While an upload streams in, asks the kernel every 250 ms to write its dirty pages to disk, so
 * that disk writeback overlaps the transfer and the fsync at commit has little left to do (a
 * 1 GiB blob would otherwise wait seconds for it). Best effort: errors are ignored here, and the
 * fsync at commit is what guarantees durability.
 */
function flushInBackground(handle: FileHandle): () => void {
  let flushing = false;
  const timer = setInterval(() => {
    if (flushing) return;
    flushing = true;
    handle
      .datasync()
      .catch(() => undefined) // closed meanwhile: the stream finished
      .finally(() => {
        flushing = false;
      });
  }, 250);
  return () => clearInterval(timer);
}
