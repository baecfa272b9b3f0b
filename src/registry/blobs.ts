import type { Readable } from 'node:stream';
import { requireDigest } from './digest.js';
import { RegistryError } from './errors.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import { BlobNotFoundError } from '../storage/blob-store.js';
import { BlobInUseError, type BlobRecord, type MetadataStore } from '../metadata/metadata-store.js';

/** Blobs as seen through a repository: a blob is visible only where it was pushed or mounted. */
export class BlobService {
  constructor(
    private readonly blobStore: BlobStore,
    private readonly metadata: MetadataStore,
  ) {}

  /** Answers HEAD from metadata alone. */
  async stat(repository: string, digestParam: string): Promise<BlobRecord> {
    const digest = canonical(digestParam);
    const blob = await this.metadata.blobs.getInRepository(repository, digest);
    if (!blob) throw blobUnknown(digest);
    return blob;
  }

  async open(repository: string, digestParam: string, range?: ByteRange): Promise<{ blob: BlobRecord; stream: Readable }> {
    const blob = await this.stat(repository, digestParam);
    try {
      return { blob, stream: await this.blobStore.open(blob.digest, range) };
    } catch (error) {
      if (error instanceof BlobNotFoundError) throw blobUnknown(blob.digest);
      throw error;
    }
  }

  /**
   * Where the client may fetch a blob directly (a pre-signed object store URL), or null when
   * this node serves it. Call after `stat`: the metadata decides what a repository holds.
   */
  async redirectUrl(blob: BlobRecord): Promise<string | null> {
    return this.blobStore.redirectUrl ? this.blobStore.redirectUrl(blob.digest) : null;
  }

  /** Unlinks a blob from a repository (its bytes go when nothing references them any more). */
  async delete(repository: string, digestParam: string): Promise<void> {
    const digest = canonical(digestParam);
    try {
      if (!(await this.metadata.blobs.unlink(repository, digest))) throw blobUnknown(digest);
    } catch (error) {
      if (error instanceof BlobInUseError) {
        throw new RegistryError('DENIED', `blob is referenced by manifest ${error.manifest} in this repository; delete the manifest first`, { digest, manifest: error.manifest }, undefined, 409);
      }
      throw error;
    }
  }

  /**
   * Cross-repository mount: links a blob that `from` holds (or, without `from`, that the
   * registry holds anywhere) into `repository`. Resolves to null when it cannot be mounted.
   */
  async mount(repository: string, digestParam: string, from: string | undefined): Promise<BlobRecord | null> {
    const digest = canonical(digestParam);
    if (from !== undefined && !(await this.metadata.blobs.getInRepository(from, digest))) return null;
    // Only a live blob (not marked by garbage collection), its bytes checked under its row lock:
    // a blob queued for deletion is reported absent, and the client uploads it.
    return this.metadata.blobs.mount(repository, digest, async () => (await this.blobStore.stat(digest)) !== null);
  }
}

function canonical(digest: string): string {
  const parsed = requireDigest(digest);
  return `${parsed.algorithm}:${parsed.hex}`;
}

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', 'blob unknown to this repository', { digest });
}
