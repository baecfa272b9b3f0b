import type { FileHandle } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';

/**
 * Bytes read per step, and how many steps may be under way at once: one buffer is read from the
 * file while the other waits for the socket. A third bought no throughput and cost 13–24 MB of
 * resident memory during eight parallel downloads (bench/README.md).
 */
const BUFFER_SIZE = 1024 * 1024;
const BUFFERS = 2;
/** How long the last writes' callbacks may take once the client has closed (see copyRange). */
const LAST_WRITES_GRACE_MS = 1_000;

/**
 * A stream of a blob file that can also copy itself to a writable with a few reused buffers.
 * A Readable allocates a fresh buffer for every chunk; at a gigabyte a second those
 * allocations make V8 collect garbage a dozen times a second, and serving one large blob spent
 * a quarter of its CPU in the collector (bench/README.md). `copyTo` reuses two buffers
 * instead, each refilled only once the socket has taken its previous bytes.
 */
export interface CopyableStream extends Readable {
  /** Writes the stream's bytes to `out` (without ending it), then closes the file. Use the stream or copyTo, not both. */
  copyTo(out: Writable): Promise<void>;
}

export function isCopyable(stream: Readable): stream is CopyableStream {
  return typeof (stream as Partial<CopyableStream>).copyTo === 'function';
}

/** Gives `stream`, which reads bytes [start, end] of `handle` (no end: to the end of the file), a buffer-reusing copyTo. */
export function copyable(stream: Readable, handle: FileHandle, start: number, end: number | undefined): CopyableStream {
  return Object.assign(stream, {
    copyTo: (out: Writable) => copyRange(handle, start, end, out).finally(() => stream.destroy()),
  });
}

async function copyRange(handle: FileHandle, start: number, end: number | undefined, out: Writable): Promise<void> {
  const buffers = Array.from({ length: BUFFERS }, () => Buffer.allocUnsafeSlow(BUFFER_SIZE));
  const inFlight: (Promise<void> | undefined)[] = new Array(BUFFERS);
  // A close before every byte was handed to `out` cuts the copy short. One after that is also
  // how a client that read the whole body and hung up looks, when its close is seen before the
  // last write callbacks have run (2 of 300 downloads with curl here): those callbacks come
  // right after, and the copy is done. A write that met an already closed socket never calls
  // back, so the copy waits for them a moment only.
  let handedOver = false;
  const gone = new Promise<never>((_, reject) => {
    out.once('close', () => {
      const cut = () => reject(new Error('the client closed the connection'));
      if (handedOver) setTimeout(cut, LAST_WRITES_GRACE_MS).unref();
      else cut();
    });
  });
  gone.catch(() => undefined);
  // The last byte to send, known before the copy starts, so that handing it over ends the copy.
  const last = end ?? (await handle.stat()).size - 1;
  let position = start;
  let slot = 0;
  while (position <= last) {
    if (inFlight[slot]) await Promise.race([inFlight[slot], gone]);
    const buffer = buffers[slot]!;
    const { bytesRead } = await handle.read(buffer, 0, Math.min(BUFFER_SIZE, last - position + 1), position);
    if (bytesRead === 0) throw new Error(`the blob file ended at byte ${position}, before byte ${last}`);
    position += bytesRead;
    const write = written(out, bytesRead === BUFFER_SIZE ? buffer : buffer.subarray(0, bytesRead));
    write.catch(() => undefined); // awaited later; a failure meanwhile must not go unhandled
    inFlight[slot] = write;
    slot = (slot + 1) % BUFFERS;
  }
  handedOver = true;
  await Promise.race([Promise.all(inFlight), gone]);
}

/** Resolves once `out` has handed `chunk` to the operating system (so its memory may be reused). */
function written(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}
