import type { FastifyReply } from 'fastify';
import { requireRepositoryName } from '../../registry/names.js';
import { RegistryError } from '../../registry/errors.js';
import { rangeHeader, type AppendOptions, type UploadStatus } from '../../registry/uploads.js';
import { contentLength, hasBody, type OciContext } from './context.js';

/** POST /v2/<name>/blobs/uploads/: a mount, a monolithic upload, or a new session. */
export async function startUpload({ request, reply, registry, name, query, auth }: OciContext) {
  const mount = query.get('mount');
  if (mount !== null) {
    const from = query.get('from');
    const source = from === null ? undefined : requireRepositoryName(from);
    // A mount reads from its source: it needs pull there (without `from`, from anywhere: admins only).
    const allowed = await auth.permits(
      source === undefined ? { type: 'system', name: 'admin', actions: ['*'] } : { type: 'repository', name: source, actions: ['pull'] },
    );
    const blob = allowed ? await registry.blobs.mount(name, mount, source) : null;
    if (blob) return created(reply, name, blob.digest);
    // Not mountable (or not allowed): fall back to a new session, as the spec says.
  }
  const digest = query.get('digest');
  if (digest !== null && mount === null) {
    const blob = await registry.uploads.putMonolithic(name, digest, request.raw, contentLength(request));
    return created(reply, name, blob.digest);
  }
  if (hasBody(request)) request.raw.resume();
  const upload = await registry.uploads.start(name);
  return accepted(reply, upload);
}

/** PATCH: one chunk (with Content-Range) or a streamed upload (without). */
export async function patchUpload(ctx: OciContext) {
  const { request, reply, registry, name, param } = ctx;
  const upload = await registry.uploads.append(name, param, request.raw, appendOptions(ctx));
  return accepted(reply, upload);
}

/** PUT ?digest=: completes a session, with or without a last chunk. */
export async function completeUpload(ctx: OciContext) {
  const { request, reply, registry, name, param, query } = ctx;
  const body = hasBody(request) ? request.raw : null;
  const blob = await registry.uploads.complete(name, param, query.get('digest') ?? undefined, body, body ? appendOptions(ctx) : {});
  return created(reply, name, blob.digest);
}

export async function uploadStatus({ reply, registry, name, param }: OciContext) {
  const upload = await registry.uploads.status(name, param);
  return reply
    .code(204)
    .headers({ location: uploadLocation(name, upload.id), range: rangeHeader(upload.size), 'docker-upload-uuid': upload.id })
    .send();
}

export async function cancelUpload({ reply, registry, name, param }: OciContext) {
  await registry.uploads.cancel(name, param);
  return reply.code(204).send();
}

export function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function accepted(reply: FastifyReply, upload: UploadStatus) {
  return reply
    .code(202)
    .headers({
      location: uploadLocation(upload.repository, upload.id),
      range: rangeHeader(upload.size),
      'docker-upload-uuid': upload.id,
      'content-length': 0,
    })
    .send();
}

function created(reply: FastifyReply, name: string, digest: string) {
  return reply
    .code(201)
    .headers({ location: `/v2/${name}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': 0 })
    .send();
}

/** Reads Content-Range (`start-end`, optionally `bytes start-end/total`) and Content-Length. */
function appendOptions({ request, param }: OciContext): AppendOptions {
  const length = contentLength(request);
  const header = request.headers['content-range'];
  if (header === undefined) return { length };
  const match = /^(?:bytes[ =])?(\d{1,16})-(\d{1,16})(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match || Number(match[2]) < Number(match[1])) {
    request.raw.resume();
    throw new RegistryError('RANGE_INVALID', 'Content-Range must be <start>-<end> with start <= end', { contentRange: header.slice(0, 100) }, { 'docker-upload-uuid': param });
  }
  const start = Number(match[1]);
  const span = Number(match[2]) - start + 1;
  if (length !== undefined && length !== span) {
    request.raw.resume();
    throw new RegistryError('SIZE_INVALID', `Content-Range spans ${span} bytes but Content-Length is ${length}`, { span, length });
  }
  return { start, length: span };
}
