import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../registry/registry.js';
import type { RequestAuth } from '../auth/registry-guard.js';
import type { ManifestRecord } from '../../metadata/metadata-store.js';

/** What every /v2 handler receives: the parsed route plus the domain. */
export interface OciContext {
  request: FastifyRequest;
  reply: FastifyReply;
  registry: Registry;
  /** Repository name (validated), when the route has one. */
  name: string;
  /** The route's last path segment: digest, reference or upload id. */
  param: string;
  query: URLSearchParams;
  /** Who the request acts as (already allowed what the route needs). */
  auth: RequestAuth;
  /** Set by a manifest GET that answered with the manifest: what was pulled (for the records). */
  pulled?: ManifestRecord;
}

export type OciHandler = (ctx: OciContext) => Promise<unknown>;

/** Parses `n` for paginated lists: a non-negative integer or absent. */
export function pageSize(query: URLSearchParams): number | undefined {
  const n = query.get('n');
  if (n === null || n === '') return undefined;
  if (!/^\d{1,9}$/.test(n)) return Number.NaN;
  return Number(n);
}

/** The RFC 5988 Link header to the next page of a list. */
export function nextLink(path: string, n: number | undefined, last: string, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams({ ...extra, ...(n !== undefined ? { n: String(n) } : {}), last });
  return `<${path}?${params.toString()}>; rel="next"`;
}

/** Declared body length, when the client sent a valid Content-Length. */
export function contentLength(request: FastifyRequest): number | undefined {
  const value = request.headers['content-length'];
  return value !== undefined && /^\d{1,16}$/.test(value) ? Number(value) : undefined;
}

/** True when the request carries a body (a length over zero or a chunked transfer). */
export function hasBody(request: FastifyRequest): boolean {
  const length = contentLength(request);
  return (length !== undefined && length > 0) || request.headers['transfer-encoding'] !== undefined;
}
