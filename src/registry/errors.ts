/**
 * The one catalogue of registry errors: each OCI error code with its HTTP status and message.
 * Domain code throws RegistryError; the HTTP layer renders it as the OCI error JSON.
 */
export const errorCatalogue = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a blob unknown to the repository' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'invalid tag' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 415, message: 'the operation is unsupported' },
  TOO_MANY_REQUESTS: { status: 429, message: 'too many requests' },
  // Not in the spec's table, but the spec's status codes need them: 413 for manifests over the
  // limit, 416 for out-of-order chunks and unsatisfiable ranges, 405 for unknown methods.
  MANIFEST_TOO_LARGE: { status: 413, message: 'manifest too large' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  METHOD_UNKNOWN: { status: 405, message: 'method not allowed on this endpoint' },
  NOT_FOUND: { status: 404, message: 'no such endpoint' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export class RegistryError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    /** Response headers that belong to this error (e.g. the current Range on a 416). */
    readonly headers?: Record<string, string>,
    status?: number,
  ) {
    // An answer to the client, not a fault: no stack trace, whose capture cost about a tenth
    // of the CPU of a HEAD that finds no blob (clients ask before every push).
    const traceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? errorCatalogue[code].message);
    Error.stackTraceLimit = traceLimit;
    this.name = 'RegistryError';
    this.status = status ?? errorCatalogue[code].status;
  }
}
