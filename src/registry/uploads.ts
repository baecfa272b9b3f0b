import { randomUUID, type Hash } from 'node:crypto';
import { pipeline as pipe, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDigester, requireDigest, type ParsedDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import { readWholeBody, type WholeBody } from './whole-body.js';
import { uploadGarbage } from './young-garbage.js';
import type { BlobStore } from '../storage/blob-store.js';
import { InvalidOffsetError, UploadNotFoundError } from '../storage/blob-store.js';
import { UploadSessionNotFoundError, type AppendLease, type MetadataStore, type UploadRecord } from '../metadata/metadata-store.js';

const uploadIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A SHA-256 state that matches the first `offset` bytes of an upload. */
interface HashState {
  hash: Hash;
  offset: number;
}

/** How long a write lease lasts without renewal: a dead writer blocks its session this long. */
const appendLeaseMs = 15_000;

export interface UploadStatus {
  id: string;
  repository: string;
  size: number;
}

export interface AppendOptions {
  /** Start offset declared by Content-Range; must equal the current size. */
  start?: number;
  /** Exact number of bytes the client declared (Content-Length or the Content-Range span). */
  length?: number;
}

/**
 * Blob upload sessions. The metadata holds each session and its acknowledged size (so that a
 * session survives restarts and can continue on any node); the BlobStore holds its bytes.
 *
 * The digest is computed while the bytes stream in. The hash state lives in this process only;
 * when a session continues without it (after a restart, or on another node) the stored bytes
 * are read back and hashed once at completion.
 *
 * Whole blobs: on a store with `putBlob` (S3; the filesystem, up to 1 MiB), a blob whose bytes all
 * arrive in one request (a monolithic POST, a PUT with the body, or one streamed PATCH without
 * Content-Range) and fit in `wholeBlobLimit` is read into memory, hashed and written once, at its
 * content address: one object store request (one file written and renamed) instead of staging,
 * assembling and deleting. A PATCH does not know the
 * digest the client will claim, so it stores the bytes under the digest they actually have
 * (correct by construction) and records it in the session; the PUT, on any node, then only
 * compares digests. Staging data is created only when a session needs it (lazily).
 */
export class UploadService {
  private readonly hashes = new Map<string, HashState>();
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly blobStore: BlobStore,
    private readonly metadata: MetadataStore,
  ) {}

  async start(repository: string): Promise<UploadStatus> {
    const id = randomUUID();
    if (!this.blobStore.putBlob) await this.blobStore.createUpload(id); // else when first needed
    await this.metadata.uploads.create({ id, repository });
    // No hash state yet: the first staged append starts one (see write), a whole body needs none.
    return { id, repository, size: 0 };
  }

  async status(repository: string, id: string): Promise<UploadStatus> {
    const upload = await this.find(repository, id);
    return { id, repository, size: upload.size };
  }

  /** Appends a chunk (PATCH) and returns the new status. */
  async append(repository: string, id: string, body: Readable, options: AppendOptions = {}): Promise<UploadStatus> {
    return this.locks.run(id, async () => {
      const size = await this.withLease(repository, id, body, async (upload, lease) => {
        const whole = options.start === undefined ? await this.appendWhole(upload, body, options, lease) : { stream: body };
        if ('size' in whole) {
          if (!(await this.metadata.uploads.endAppend(lease, whole.size, whole.blobDigest))) throw leaseLost(id);
          return whole.size;
        }
        await this.stage(upload);
        const written = await this.write(upload, whole.stream, options);
        if (!(await this.metadata.uploads.endAppend(lease, written))) throw leaseLost(id);
        return written;
      });
      return { id, repository, size };
    });
  }

  /** Appends an optional last chunk, verifies the digest and makes the blob visible (PUT). */
  async complete(
    repository: string,
    id: string,
    digestParam: string | undefined,
    body: Readable | null,
    options: AppendOptions = {},
  ): Promise<{ digest: string; size: number }> {
    const digest = requireDigest(digestParam);
    const digestString = `${digest.algorithm}:${digest.hex}`;
    return this.locks.run(id, async () => {
      return this.withLease(repository, id, body, async (upload, lease) => {
        const whole = await this.completeWhole(upload, digest, body, options, lease);
        if ('blob' in whole) {
          await this.metadata.uploads.complete(id, whole.blob, lease);
          this.hashes.delete(id);
          return whole.blob;
        }
        if (whole.stream || upload.blobDigest) await this.stage(upload);
        const size = whole.stream ? await this.write(upload, whole.stream, options) : upload.size;
        try {
          await this.verify(id, digest, size);
        } catch (error) {
          // The last chunk arrived whole: keep it, so that the client may retry the PUT.
          await this.metadata.uploads.endAppend(lease, size);
          throw uploadDataError(error, id);
        }
        try {
          await this.storePinned(id, repository, { digest: digestString, size }, lease, () => this.blobStore.commitUpload(id, digestString, size));
        } catch (error) {
          throw uploadDataError(error, id);
        }
        await this.metadata.uploads.complete(id, { digest: digestString, size }, lease);
        this.hashes.delete(id);
        return { digest: digestString, size };
      });
    });
  }

  /** A whole blob in one request (POST with ?digest=): never a visible session. */
  async putMonolithic(repository: string, digestParam: string, body: Readable, length?: number): Promise<{ digest: string; size: number }> {
    const digest = requireDigest(digestParam);
    const digestString = `${digest.algorithm}:${digest.hex}`;
    let source: Readable = body;
    if (this.blobStore.putBlob) {
      const read = await this.readWhole(body, length);
      if ('whole' in read) {
        const actual = createDigester(digest.algorithm).update(read.whole).digest('hex');
        if (actual !== digest.hex) throw digestMismatch(digest, actual);
        // Pinned against garbage collection while the bytes are written (see storePinned).
        const pin = randomUUID();
        const whole = { digest: digestString, size: read.whole.length };
        await this.storePinned(pin, repository, whole, undefined, () => this.blobStore.putBlob!(digestString, read.whole));
        await this.metadata.uploads.complete(pin, whole);
        return { digest: digestString, size: read.whole.length };
      }
      source = read.stream;
    }
    const id = randomUUID();
    await this.blobStore.createUpload(id);
    let committed = false;
    try {
      const hash = createDigester(digest.algorithm);
      const size = await this.blobStore.appendUpload(id, tap(source, hash), 0);
      if (length !== undefined && size !== length) throw sizeMismatch(length, size);
      const actual = hash.digest('hex');
      if (actual !== digest.hex) throw digestMismatch(digest, actual);
      await this.storePinned(id, repository, { digest: digestString, size }, undefined, () => this.blobStore.commitUpload(id, digestString, size));
      committed = true; // the commit removed the staging data (on S3, an abort costs a request)
      await this.metadata.uploads.complete(id, { digest: digestString, size });
      return { digest: digestString, size };
    } finally {
      if (!committed) await this.blobStore.abortUpload(id).catch(() => undefined);
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.locks.run(id, async () => {
      const upload = await this.find(repository, id);
      await this.releaseWhole(upload);
      await this.metadata.uploads.delete(id);
      await this.blobStore.abortUpload(id);
      this.hashes.delete(id);
    });
  }

  /** Removes sessions idle since before `cutoff` and their data. Returns how many were removed. */
  async expire(cutoff: Date): Promise<number> {
    let removed = 0;
    for (;;) {
      const stale = await this.metadata.uploads.listStale(cutoff, 100);
      if (stale.length === 0) break;
      for (const upload of stale) {
        await this.locks.run(upload.id, async () => {
          await this.releaseWhole(upload);
          await this.metadata.uploads.delete(upload.id);
          await this.blobStore.abortUpload(upload.id);
          this.hashes.delete(upload.id);
        });
        removed++;
      }
    }
    // Staging data with no session: left by a crash between createUpload and the session row,
    // or by an interrupted monolithic upload.
    for await (const staged of this.blobStore.listUploads()) {
      if (staged.modifiedAt < cutoff && !(await this.metadata.uploads.get(staged.id))) {
        await this.blobStore.abortUpload(staged.id);
        removed++;
      }
    }
    // Half-written staging data that no session can use (e.g. the S3 multipart upload of an
    // append cut short by a crash): invisible, but it holds storage until aborted.
    if (this.blobStore.abortStaleWrites) removed += await this.blobStore.abortStaleWrites(cutoff);
    return removed;
  }

  /**
   * Stores a verified blob's bytes at its content address (`store`) under garbage collection's
   * pin: first `reserve` pins the digest to the session (without a lease, to a session row of
   * its own) and records the blob live, clearing a GC mark; GC then neither marks it nor deletes
   * its bytes, so bytes that `store` finds already there (and skips) or writes stay until
   * `uploads.complete` links them. Every write of bytes at a content address must go through here.
   */
  private async storePinned(id: string, repository: string, blob: { digest: string; size: number }, lease: AppendLease | undefined, store: () => Promise<void>): Promise<void> {
    // Over the project's quota: refused before anything is written (checked again when linking).
    await this.metadata.quotas.precheck(repository, blob);
    await this.metadata.uploads.reserve(id, repository, blob, lease);
    try {
      await store();
    } catch (error) {
      // A session row made only for the pin goes with the failure; a real session keeps its own.
      if (!lease) await this.metadata.uploads.delete(id).catch(() => undefined);
      throw error;
    }
  }

  private async find(repository: string, id: string): Promise<UploadRecord> {
    const upload = uploadIdPattern.test(id) ? await this.metadata.uploads.get(id) : null;
    if (!upload || upload.repository !== repository) throw sessionUnknown(id);
    return upload;
  }

  /**
   * Runs `work` on the session as it stands under its write lease, which no other process or
   * node can hold at the same time (taken with the session's row, in one statement), renewed
   * while the work lasts. The lease ends with the work: `work` records the new size itself; on
   * failure the lease is released with the size unchanged.
   */
  private async withLease<T>(repository: string, id: string, body: Readable | null, work: (upload: UploadRecord, lease: AppendLease) => Promise<T>): Promise<T> {
    const claimed = uploadIdPattern.test(id) ? await this.metadata.uploads.claim(id, appendLeaseMs) : null;
    if (!claimed || claimed.upload.repository !== repository) {
      body?.resume();
      if (claimed) {
        await this.metadata.uploads.endAppend(claimed.lease).catch(() => undefined);
        throw sessionUnknown(id);
      }
      await this.find(repository, id); // no such session (here)?
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload session; retry when it has finished', { session: id }, undefined, 409);
    }
    const { upload, lease } = claimed;
    const renewal = setInterval(() => {
      this.metadata.uploads.renewAppend(lease, appendLeaseMs).catch(() => undefined);
    }, appendLeaseMs / 3);
    try {
      return await work(upload, lease);
    } catch (error) {
      await this.metadata.uploads.endAppend(lease).catch(() => undefined);
      throw error;
    } finally {
      clearInterval(renewal);
    }
  }

  /**
   * A body that fits in the store's `wholeBlobLimit`, in memory and checked against the declared
   * Content-Length; a larger one as a stream of all of it.
   */
  private async readWhole(body: Readable | null, length: number | undefined): Promise<WholeBody> {
    const read = await readWholeBody(body, this.blobStore.wholeBlobLimit ?? 0);
    if ('whole' in read && length !== undefined && read.whole.length !== length) throw sizeMismatch(length, read.whole.length);
    return read;
  }

  /**
   * A streamed PATCH into a session that holds nothing yet (see the class comment): when the body
   * fits in `wholeBlobLimit`, stores it as the blob it is and resolves to the new size and that
   * blob; otherwise resolves to the whole body as a stream, for staging.
   */
  private async appendWhole(
    upload: UploadRecord,
    body: Readable,
    options: AppendOptions,
    lease: AppendLease,
  ): Promise<{ size: number; blobDigest: string | null } | { stream: Readable }> {
    if (!this.blobStore.putBlob || upload.size !== 0) return { stream: body };
    const read = await this.readWhole(body, options.length);
    if ('stream' in read) return read;
    if (read.whole.length === 0) return { size: 0, blobDigest: null };
    const hash = createDigester('sha256').update(read.whole);
    const blobDigest = `sha256:${hash.copy().digest('hex')}`;
    await this.putWhole(upload, blobDigest, read.whole, lease);
    this.hashes.set(upload.id, { hash, offset: read.whole.length });
    return { size: read.whole.length, blobDigest };
  }

  /**
   * The completing PUT of a session that holds nothing staged: either its bytes are a whole blob
   * already (compare digests), or they all come with this PUT and fit in memory (verify, then
   * one write). Resolves to the blob, or to what must go the staged way: the body as a stream
   * (or null when the PUT has no body).
   */
  private async completeWhole(
    upload: UploadRecord,
    digest: ParsedDigest,
    body: Readable | null,
    options: AppendOptions,
    lease: AppendLease,
  ): Promise<{ blob: { digest: string; size: number } } | { stream: Readable | null }> {
    const digestString = `${digest.algorithm}:${digest.hex}`;
    if (!this.blobStore.putBlob) return { stream: body };
    if (upload.blobDigest) {
      // More bytes, or a digest of another algorithm: staged (the blob is copied in first).
      if (body || digest.algorithm !== 'sha256') return { stream: body };
      if (upload.blobDigest !== digestString) throw digestMismatch(digest, upload.blobDigest.slice('sha256:'.length));
      return { blob: { digest: digestString, size: upload.size } };
    }
    if (upload.size !== 0 || (options.start !== undefined && options.start !== 0)) return { stream: body };
    const read = await this.readWhole(body, options.length);
    if ('stream' in read) return read;
    const actual = createDigester(digest.algorithm).update(read.whole).digest('hex');
    if (actual !== digest.hex) {
      // Keep the bytes (under their real digest), so that the client may retry the PUT.
      if (read.whole.length > 0 && digest.algorithm === 'sha256') {
        await this.putWhole(upload, `sha256:${actual}`, read.whole, lease);
        await this.metadata.uploads.endAppend(lease, read.whole.length, `sha256:${actual}`);
      }
      throw digestMismatch(digest, actual);
    }
    await this.putWhole(upload, digestString, read.whole, lease);
    return { blob: { digest: digestString, size: read.whole.length } };
  }

  /** Writes a whole blob at its content address, pinned to the session (see storePinned). */
  private async putWhole(upload: UploadRecord, digest: string, bytes: Buffer, lease: AppendLease): Promise<void> {
    const id = upload.id;
    try {
      await this.storePinned(id, upload.repository, { digest, size: bytes.length }, lease, () => this.blobStore.putBlob!(digest, bytes));
    } catch (error) {
      throw uploadDataError(error, id);
    }
  }

  /**
   * Makes sure the session has staging data holding its acknowledged bytes, before a staged
   * append: created now when it was left for later, or filled with the whole blob that held the
   * bytes so far (which is then left to garbage collection).
   */
  private async stage(upload: UploadRecord): Promise<void> {
    if (!this.blobStore.putBlob || (upload.size !== 0 && !upload.blobDigest)) return;
    try {
      await this.blobStore.createUpload(upload.id);
      if (upload.blobDigest) {
        await this.blobStore.appendUpload(upload.id, await this.blobStore.open(upload.blobDigest), 0);
        await this.metadata.blobs.record({ digest: upload.blobDigest, size: upload.size });
      }
    } catch (error) {
      throw uploadDataError(error, upload.id);
    }
  }

  /** A session ends unfinished: the whole blob that held its bytes is left to garbage collection. */
  private async releaseWhole(upload: UploadRecord): Promise<void> {
    if (upload.blobDigest) await this.metadata.blobs.record({ digest: upload.blobDigest, size: upload.size });
  }

  /** Streams a chunk into the upload at its acknowledged size; resolves to the new size. */
  private async write(upload: UploadRecord, body: Readable, options: AppendOptions): Promise<number> {
    if (options.start !== undefined && options.start !== upload.size) {
      body.resume();
      throw offsetMismatch(upload, options.start);
    }
    // A session that holds nothing yet can start hashing on any node.
    const state = this.hashes.get(upload.id) ?? (upload.size === 0 ? { hash: createDigester('sha256'), offset: 0 } : undefined);
    // The hash state counts only if it has seen exactly the acknowledged bytes, and only again
    // once this append has fully succeeded.
    const hashable = state && state.offset === upload.size ? state : undefined;
    this.hashes.delete(upload.id);
    let size: number;
    try {
      size = await this.blobStore.appendUpload(upload.id, tap(body, hashable?.hash), upload.size);
    } catch (error) {
      throw uploadDataError(error, upload.id);
    }
    const received = size - upload.size;
    if (options.length !== undefined && received !== options.length) {
      // The acknowledged size stays as it was: the next append overwrites these bytes.
      throw sizeMismatch(options.length, received);
    }
    if (hashable) this.hashes.set(upload.id, { hash: hashable.hash, offset: size });
    return size;
  }

  private async verify(id: string, digest: ParsedDigest, size: number): Promise<void> {
    const state = this.hashes.get(id);
    let actual: string;
    if (state && state.offset === size && digest.algorithm === 'sha256') {
      actual = state.hash.copy().digest('hex');
    } else {
      const hash = createDigester(digest.algorithm);
      await pipeline(await this.blobStore.readUpload(id, size), tap(null, hash), async function* (source) {
        for await (const _ of source);
      });
      actual = hash.digest('hex');
    }
    if (actual !== digest.hex) throw digestMismatch(digest, actual);
  }
}

/** The Range header of an upload status: the inclusive span of bytes received. */
export function rangeHeader(size: number): string {
  return `0-${Math.max(size - 1, 0)}`;
}

/**
 * Passes a stream through while feeding a hash (if any) and counting its bytes for the young
 * generation's collections (young-garbage.ts). With a null source, returns the Transform.
 */
function tap(source: Readable | null, hash?: Hash): Transform {
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash?.update(chunk);
      uploadGarbage.passed(chunk.length);
      callback(null, chunk);
    },
  });
  // pipeline (not pipe) so that an aborted request also ends the tap with an error.
  return source ? pipe(source, transform, () => undefined) : transform;
}

/** Storage errors about a session's data (lost or cut short, e.g. by a crash), as client errors. */
function uploadDataError(error: unknown, id: string): unknown {
  if (error instanceof UploadSessionNotFoundError) return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload session not found: it was completed, cancelled or expired meanwhile', { session: id });
  if (error instanceof UploadNotFoundError) return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload data is gone; start a new upload', { session: id });
  if (error instanceof InvalidOffsetError) return new RegistryError('BLOB_UPLOAD_INVALID', 'upload data is shorter than acknowledged; start a new upload', { session: id });
  return error;
}

function digestMismatch(expected: ParsedDigest, actualHex: string): RegistryError {
  return new RegistryError('DIGEST_INVALID', `the uploaded content has digest ${expected.algorithm}:${actualHex}, not the one given`, {
    expected: `${expected.algorithm}:${expected.hex}`,
    actual: `${expected.algorithm}:${actualHex}`,
  });
}

function offsetMismatch(upload: UploadRecord, start: number): RegistryError {
  return new RegistryError(
    'RANGE_INVALID',
    `chunk starts at ${start} but the upload has ${upload.size} bytes; continue at ${upload.size}`,
    { size: upload.size },
    { Range: rangeHeader(upload.size), 'Docker-Upload-UUID': upload.id },
  );
}

function sessionUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload session not found: it was completed, cancelled, expired or never started', { session: id.slice(0, 64) });
}

function leaseLost(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', 'the upload session was taken over by another request while this chunk was written; check its status and continue from there', { session: id }, undefined, 409);
}

function sizeMismatch(declared: number, received: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `declared ${declared} bytes but received ${received}`, { declared, received });
}
