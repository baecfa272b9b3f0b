import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import { isCopyable, type CopyableStream } from '../../storage/fs/file-copy.js';
import { RegistryError } from '../../registry/errors.js';
import type { ByteRange } from '../../storage/blob-store.js';
import type { OciContext } from './context.js';

export async function headBlob({ reply, registry, name, param }: OciContext) {
  const blob = await registry.blobs.stat(name, param);
  return reply
    .headers({
      'content-length': blob.size,
      'content-type': 'application/octet-stream',
      'docker-content-digest': blob.digest,
      'accept-ranges': 'bytes',
      etag: `"${blob.digest}"`,
    })
    .send();
}

export async function getBlob({ request, reply, registry, name, param }: OciContext) {
  const blob = await registry.blobs.stat(name, param);
  // Bytes from the object store, not through this node (a Range header follows the redirect).
  const location = await registry.blobs.redirectUrl(blob);
  if (location) {
    return reply.code(307).headers({ location, 'docker-content-digest': blob.digest, 'content-length': 0 }).send();
  }
  const range = parseRange(request.headers.range, blob.size);
  const { stream } = await registry.blobs.open(name, blob.digest, range ?? undefined);
  reply.headers({
    'content-type': 'application/octet-stream',
    'docker-content-digest': blob.digest,
    'accept-ranges': 'bytes',
    etag: `"${blob.digest}"`,
  });
  if (range) {
    reply.code(206).headers({
      'content-length': range.end - range.start + 1,
      'content-range': `bytes ${range.start}-${range.end}/${blob.size}`,
    });
  } else {
    reply.header('content-length', blob.size);
  }
  if (isCopyable(stream)) return sendCopy(reply, stream);
  return reply.send(stream);
}

/**
 * Writes the response itself (Fastify's onResponse hooks still run; onSend hooks do not, so the
 * headers they would add are set earlier, in onRequest) so that the file is copied with reused
 * buffers (see file-copy.ts). A failure once bytes have gone out can only cut the connection.
 */
async function sendCopy(reply: FastifyReply, stream: CopyableStream): Promise<void> {
  reply.hijack();
  const response = reply.raw;
  response.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
  try {
    await stream.copyTo(response);
    if (!response.destroyed) response.end(); // a client that read every byte may have hung up already
  } catch (error) {
    reply.log.warn({ err: error }, 'blob response cut short');
    response.destroy(error as Error);
  }
}

export async function deleteBlob({ reply, registry, name, param }: OciContext) {
  await registry.blobs.delete(name, param);
  return reply.code(202).header('content-length', 0).send();
}

/**
 * One `bytes=` range (start-end, start- or -suffix), clipped to the blob. Multiple ranges and
 * other units are ignored (the whole blob is served, as RFC 9110 allows).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(size - suffix, 0);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (match[2] !== '' && Number(match[2]) < start) return null;
  }
  if (start >= size) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError('RANGE_INVALID', `the range lies outside the blob's ${size} bytes`, { size }, { 'content-range': `bytes */${size}` });
}
