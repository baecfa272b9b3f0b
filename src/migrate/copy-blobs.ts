import { createHash, randomUUID } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStore } from '../storage/blob-store.js';

export interface BlobCopyProgress {
  blobs: number;
  totalBlobs: number;
  bytes: number;
  totalBytes: number;
  copied: number;
  skipped: number;
}

/**
 * Copies blobs from one store to another, verifying each digest while its bytes stream through:
 * a blob whose bytes do not match its digest or size is reported and not written (the copy then
 * fails at the end, naming them). Blobs that the target already holds with the right size are
 * skipped — a store holds a blob only at its content address and only after it was verified —
 * so an interrupted copy resumes where it stopped. `concurrency` blobs at a time.
 */
export async function copyBlobs(
  blobs: { digest: string; size: number }[],
  source: BlobStore,
  target: BlobStore,
  onProgress: (progress: BlobCopyProgress) => void,
  concurrency = 4,
): Promise<BlobCopyProgress> {
  const progress: BlobCopyProgress = { blobs: 0, totalBlobs: blobs.length, bytes: 0, totalBytes: blobs.reduce((a, b) => a + b.size, 0), copied: 0, skipped: 0 };
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < blobs.length) {
      const blob = blobs[next++]!;
      try {
        const present = await target.stat(blob.digest);
        if (present?.size === blob.size) progress.skipped++;
        else {
          await copyOne(blob, source, target);
          progress.copied++;
        }
      } catch (error) {
        failures.push(`${blob.digest}: ${(error as Error).message}`);
      }
      progress.blobs++;
      progress.bytes += blob.size;
      onProgress(progress);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, blobs.length) }, worker));
  if (failures.length > 0) {
    throw new Error(`${failures.length} blob(s) could not be copied (the metadata was not copied; fix the cause and run again):\n  ${failures.slice(0, 20).join('\n  ')}`);
  }
  return progress;
}

/** Streams one blob into the target's staging area while hashing it; commits only when it matches. */
async function copyOne(blob: { digest: string; size: number }, source: BlobStore, target: BlobStore): Promise<void> {
  const [algorithm, hex] = blob.digest.split(':') as [string, string];
  const hash = createHash(algorithm);
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const verify = (actual: string) => {
    if (size !== blob.size || actual !== hex) throw new Error(`the source's bytes do not match: ${size} bytes with digest ${algorithm}:${actual}, expected ${blob.size} bytes`);
  };
  if (target.putBlob && blob.size <= (target.wholeBlobLimit ?? 0)) {
    // Small: read whole, verify, one write at the content address.
    const chunks: Buffer[] = [];
    await pipeline(await source.open(blob.digest), tap, async function* (verified) {
      for await (const chunk of verified) chunks.push(chunk as Buffer);
    });
    verify(hash.digest('hex'));
    await target.putBlob(blob.digest, Buffer.concat(chunks, size));
    return;
  }
  const id = randomUUID();
  await target.createUpload(id);
  let committed = false;
  try {
    const written = target.appendUpload(id, tap, 0).catch((error: unknown) => {
      tap.destroy(error as Error);
      throw error;
    });
    await Promise.all([written, pipeline(await source.open(blob.digest), tap)]);
    verify(hash.digest('hex'));
    await target.commitUpload(id, blob.digest, size);
    committed = true;
  } finally {
    if (!committed) await target.abortUpload(id).catch(() => undefined);
  }
}
