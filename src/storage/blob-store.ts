import type { Readable } from 'node:stream';

/**
 * Content-addressed blob storage. It knows nothing about repositories: which repository holds
 * which blob is metadata. Digests handed to a BlobStore are already validated (`algo:hex`).
 *
 * Uploads are written to a private staging area and become visible at their content address
 * only through `commitUpload`, atomically: a crash at any moment leaves either no blob or the
 * whole blob, never a partial one.
 */
export interface BlobStore {
  /** Size of a stored blob, or null when it is absent. */
  stat(digest: string): Promise<{ size: number } | null>;
  /** Streams a blob, or the inclusive byte range [start, end] of it. Throws BlobNotFoundError. */
  open(digest: string, range?: ByteRange): Promise<Readable>;
  /** Removes a blob; removing an absent blob is not an error. */
  delete(digest: string): Promise<void>;
  /** Optional: removes many blobs at once (S3: DeleteObjects batches, a few in flight). */
  deleteMany?(digests: string[]): Promise<void>;
  /** Every stored blob (for garbage collection and consistency checks). */
  list(): AsyncIterable<{ digest: string; size: number }>;

  /** Creates an empty upload staging area with the given id (a UUID chosen by the caller). */
  createUpload(id: string): Promise<void>;
  /**
   * Appends a stream to an upload at `offset`. Bytes past `offset` left by an interrupted earlier
   * append are discarded first. Throws UploadNotFoundError, or InvalidOffsetError when fewer
   * than `offset` bytes are stored. Resolves to the new size.
   */
  appendUpload(id: string, data: Readable, offset: number): Promise<number>;
  /** Streams the first `size` bytes of an upload (to re-hash it when no hash state is at hand). */
  readUpload(id: string, size: number): Promise<Readable>;
  /**
   * Makes the first `size` bytes of an upload the blob `digest` (already verified by the caller)
   * and removes the upload. Durable when it resolves. Idempotent when the blob already exists.
   */
  commitUpload(id: string, digest: string, size: number): Promise<void>;
  /** Removes an upload and its data; absent uploads are not an error. */
  abortUpload(id: string): Promise<void>;
  /** Every upload staging area, with the time it was last written. */
  listUploads(): AsyncIterable<{ id: string; modifiedAt: Date }>;
  /**
   * Optional: removes half-written staging data begun before `before` that no upload can use
   * any more (e.g. S3 multipart uploads of appends cut short by a crash). Resolves to how many.
   */
  abortStaleWrites?(before: Date): Promise<number>;

  /**
   * Optional, for stores where every write is a billed round trip (S3): stores a whole blob of
   * at most `wholeBlobLimit` bytes, already verified by the caller, at its content address in
   * one atomic write (overwriting identical bytes is harmless). Uploads whose bytes arrive in one
   * request then cost one write instead of staging, assembling and cleaning up.
   */
  putBlob?(digest: string, data: Buffer): Promise<void>;
  /** Largest blob `putBlob` takes (the bytes are held in memory meanwhile). */
  readonly wholeBlobLimit?: number;

  /**
   * Optional: a URL from which a client may fetch the blob directly (e.g. pre-signed S3), or
   * null when redirects are off. Lets blob GETs bypass this node.
   */
  redirectUrl?(digest: string): Promise<string | null>;

  /** Optional: requests sent to a remote backend so far, by operation (for metrics). */
  requestCounts?(): Record<string, number>;

  /** Checks that the backend is reachable and writable (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

export class BlobNotFoundError extends Error {
  constructor(readonly digest: string) {
    super(`blob ${digest} not found`);
    this.name = 'BlobNotFoundError';
  }
}

export class UploadNotFoundError extends Error {
  constructor(readonly uploadId: string) {
    super(`upload ${uploadId} not found`);
    this.name = 'UploadNotFoundError';
  }
}

export class InvalidOffsetError extends Error {
  constructor(
    readonly uploadId: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`upload ${uploadId}: offset ${expected} requested but ${actual} bytes are stored`);
    this.name = 'InvalidOffsetError';
  }
}

/**
 * The storage backend failed or did not answer in time (after the driver's own bounded retries):
 * the request fails with 503, and succeeds again once the backend is back.
 */
export class StorageUnavailableError extends Error {
  readonly dependency = 'storage';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}
