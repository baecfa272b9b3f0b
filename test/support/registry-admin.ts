// Management API calls against a running Stowage (for end-to-end tests with authentication).
import type { RunningStowage } from './stowage.js';

export interface Credentials {
  username: string;
  password: string;
}

export function basicAuth(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

/** A management API call that must succeed (2xx); resolves to the JSON body, if any. */
export async function manageRegistry(registry: Pick<RunningStowage, 'url'>, as: Credentials, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${registry.url}/api/v1${path}`, {
    method,
    headers: { authorization: basicAuth(as), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} /api/v1${path}: HTTP ${response.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}
