// Helpers for the access-control suites: an in-process Stowage with token authentication on,
// credentials, tokens from the token endpoint, and management API calls.
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { expect } from 'vitest';
import { createTestApp, type AppSettings, type Response, type TestApp } from './http-app.js';

export const ADMIN = { username: 'admin', password: 'admin-password-for-tests' };

export interface Creds {
  username: string;
  password: string;
}

/** An in-process Stowage with token authentication and a known admin password. */
export function createAuthApp(settings: AppSettings = {}): Promise<TestApp> {
  return createTestApp({
    flags: { 'auth.mode': 'token', ...settings.flags },
    env: { STOWAGE_ADMIN_PASSWORD: ADMIN.password, ...settings.env },
  });
}

export function basic(creds: Creds): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** GET /auth/token with these credentials (or none) and scopes; the raw response. */
export function requestToken(app: TestApp, creds: Creds | null, scopes: string[], extra: Record<string, string> = {}): Promise<Response> {
  const query = new URLSearchParams([['service', 'stowage'], ...scopes.map((s) => ['scope', s] as [string, string]), ...Object.entries(extra)]);
  return app.get(`/auth/token?${query.toString()}`, creds ? { authorization: basic(creds) } : {});
}

/** A bearer token for these credentials and scopes (the request must succeed). */
export async function tokenFor(app: TestApp, creds: Creds | null, scopes: string[]): Promise<string> {
  const response = await requestToken(app, creds, scopes);
  expect(response.statusCode, response.body).toBe(200);
  return response.json().token as string;
}

/** The claims of a JWT, unverified. */
export function claimsOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, any>;
}

/** The access a token grants, as `type:name:actions` strings. */
export function grantedScopes(token: string): string[] {
  return (claimsOf(token).access as { type: string; name: string; actions: string[] }[]).map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`);
}

/** A management API call as `as` (Basic), or anonymous. */
export function api(app: TestApp, method: string, path: string, options: { as?: Creds | null; body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  return app.inject({
    method: method as 'GET',
    url: `/api/v1${path}`,
    headers: { ...(options.as ? { authorization: basic(options.as) } : {}), ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
  });
}

/** An API call that must answer `status`; resolves to the JSON body (if any). */
export async function apiOk(app: TestApp, method: string, path: string, options: Parameters<typeof api>[3] & { status?: number } = {}): Promise<any> {
  const response = await api(app, method, path, options);
  expect(response.statusCode, `${method} ${path}: ${response.body}`).toBe(options.status ?? (method === 'POST' ? 201 : method === 'DELETE' || method === 'PUT' ? 204 : 200));
  return response.body === '' ? undefined : response.json();
}

/** Creates a user (as admin) with a password derived from the name. */
export async function addUser(app: TestApp, name: string, extra: Record<string, unknown> = {}): Promise<Creds> {
  const creds = { username: name, password: `${name}-password-123` };
  await apiOk(app, 'POST', '/users', { as: ADMIN, body: { name, password: creds.password, ...extra } });
  return creds;
}

/** Creates a project (as admin) with members. */
export async function addProject(app: TestApp, name: string, options: { public?: boolean; members?: Record<string, string> } = {}): Promise<void> {
  await apiOk(app, 'POST', '/projects', { as: ADMIN, body: { name, public: options.public ?? false } });
  for (const [user, role] of Object.entries(options.members ?? {})) {
    await apiOk(app, 'PUT', `/projects/${name}/members/${user}`, { as: ADMIN, body: { role } });
  }
}

/** The active signing key's private JWK, read from the database (to forge tokens in attack tests). */
export function signingKeyOf(app: TestApp): { kid: string; jwk: Record<string, string> } {
  const db = new BetterSqlite3(join(app.dataDir, 'stowage.db'), { readonly: true });
  try {
    const row = db.prepare('select kid, private_jwk from signing_keys where retired_at is null order by created_at desc limit 1').get() as { kid: string; private_jwk: string };
    return { kid: row.kid, jwk: JSON.parse(row.private_jwk) as Record<string, string> };
  } finally {
    db.close();
  }
}

/** Runs one statement on the app's SQLite database (for states tests cannot reach otherwise). */
export function sqlite(app: TestApp, text: string, ...params: unknown[]): void {
  const db = new BetterSqlite3(join(app.dataDir, 'stowage.db'));
  try {
    db.prepare(text).run(...params);
  } finally {
    db.close();
  }
}

/** Makes the app's /v2 requests without an Authorization header carry this bearer token. */
export function authorizeRegistryRequests(app: TestApp, token: string): void {
  const inject = app.inject.bind(app);
  app.inject = (options) =>
    inject(typeof options === 'object' && String(options.url).startsWith('/v2/') && !options.headers?.authorization ? { ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } } : options);
}
