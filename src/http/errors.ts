import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../registry/errors.js';
import { MetadataUnavailableError } from '../metadata/metadata-store.js';
import { StorageUnavailableError } from '../storage/blob-store.js';
import { QuotaExceededError } from '../metadata/housekeeping-store.js';

/**
 * The one place where errors become HTTP responses: RegistryError as the OCI error JSON with
 * its status and headers; anything else as a 500 that names the request id (and is logged).
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof QuotaExceededError) {
    const { project, kind, used, limit, adding } = error;
    error = new RegistryError('DENIED', error.message, { project, kind, used, limit, adding });
  }
  if (error instanceof RegistryError) {
    if (error.headers) reply.headers(error.headers);
    return reply
      .code(error.status)
      .type('application/json')
      .send({ errors: [{ code: error.code, message: error.message, detail: error.detail ?? null }] });
  }
  const fastifyStatus = (error as { statusCode?: number }).statusCode;
  if (fastifyStatus && fastifyStatus >= 400 && fastifyStatus < 500) {
    return reply.code(fastifyStatus).type('application/json').send({
      errors: [{ code: 'UNSUPPORTED', message: (error as Error).message, detail: null }],
    });
  }
  if (error instanceof StorageUnavailableError || error instanceof MetadataUnavailableError) {
    // A dependency is down or slow: the client may retry; nothing half-done became visible.
    request.log.warn({ dependency: error.dependency, reason: error.message }, 'dependency unavailable');
    return reply
      .code(503)
      .header('retry-after', '5')
      .type('application/json')
      .send({ errors: [{ code: 'UNAVAILABLE', message: error.message, detail: { dependency: error.dependency } }] });
  }
  request.log.error({ err: error }, 'request failed');
  return reply.code(500).type('application/json').send({
    errors: [{ code: 'UNKNOWN', message: `internal error; see the server log for request ${request.id}`, detail: null }],
  });
}
