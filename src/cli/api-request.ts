import { ControlError } from '../control/errors.js';

type Json = Record<string, any>;

/**
 * A JSON request to a remote Stowage's management API (`--server`) with Basic credentials: GET
 * without a body, POST with one. API errors come back as ControlErrors with the API's message.
 */
export function apiRequester(server: string, username: string, password: string): (path: string, body?: unknown) => Promise<Json> {
  const base = `${server.replace(/\/+$/, '')}/api/v1`;
  const headers = { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`, 'content-type': 'application/json' };
  return async (path, body) => {
    const response = await fetch(`${base}${path}`, { method: body === undefined ? 'GET' : 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const parsed = (await response.json().catch(() => ({}))) as Json;
    if (response.ok) return parsed;
    const code = ({ 400: 'invalid', 401: 'unauthorized', 403: 'forbidden', 404: 'not-found', 409: 'conflict', 429: 'too-many-requests' } as const)[response.status as 400];
    throw new ControlError(code ?? 'invalid', String(parsed.error?.message ?? `HTTP ${response.status}`), parsed.error?.fields ?? []);
  };
}
