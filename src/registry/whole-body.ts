import { Readable } from 'node:stream';

/** A request body read whole into memory, or, past the limit, a stream of all of it. */
export type WholeBody = { whole: Buffer } | { stream: Readable };

/**
 * Reads `body` into memory while it stays within `limit` bytes (bounded memory per request).
 * A larger body comes back as a stream that yields what was read so far, then the rest, so that
 * the caller can fall back to streaming it without losing a byte. A null body is empty.
 */
export async function readWholeBody(body: Readable | null, limit: number): Promise<WholeBody> {
  if (body === null) return { whole: Buffer.alloc(0) };
  const chunks: Buffer[] = [];
  let size = 0;
  const source = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const next = await source.next();
    if (next.done) return { whole: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) };
    chunks.push(next.value);
    size += next.value.length;
    if (size > limit) return { stream: Readable.from(rest(chunks, source), { objectMode: false }) };
  }
}

async function* rest(read: Buffer[], source: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield* read;
  read.length = 0; // let the buffered prefix go once it is passed on
  for (;;) {
    const next = await source.next();
    if (next.done) return;
    yield next.value;
  }
}
