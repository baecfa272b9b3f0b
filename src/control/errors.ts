import type { ZodError } from 'zod';

export type ControlErrorCode = 'invalid' | 'unauthorized' | 'forbidden' | 'not-found' | 'conflict' | 'too-many-requests';

/** A failed management operation; the API maps `code` to an HTTP status. */
export class ControlError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
    /** For `invalid`: the offending fields (dotted paths) with what is wrong. */
    readonly fields: { field: string; message: string }[] = [],
    /** For `too-many-requests`: seconds until a retry may succeed. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ControlError';
  }

  static fromZod(error: ZodError, prefix = ''): ControlError {
    const fields = error.issues.map((issue) => ({
      field: [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || '(body)',
      message: issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message,
    }));
    return new ControlError('invalid', `invalid input: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, fields);
  }
}

export function notFound(what: string): ControlError {
  return new ControlError('not-found', `${what} not found`);
}
