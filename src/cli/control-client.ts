import { userInfo } from 'node:os';
import { pino } from 'pino';
import { createAuthService } from '../app/auth-service.js';
import { systemActor, type Actor } from '../auth/principal.js';
import type { ResolvedConfig } from '../config/load.js';
import { AuditLog } from '../control/audit.js';
import { createControl, type Control } from '../control/control.js';
import { ControlError } from '../control/errors.js';
import { openMetadataStore } from '../metadata/index.js';
import { recorderOptions } from '../events/settings.js';

type Json = Record<string, unknown>;

/** A page of a list as the API returns it. */
export interface ListResult {
  items: Json[];
  total?: number;
}

/**
 * What the management commands do, against the local database or a remote Stowage. Both take
 * and return the API's JSON shapes, so the commands print the same either way.
 */
export interface ControlClient {
  readonly mode: 'local' | 'remote';
  createUser(input: Json): Promise<Json>;
  setPassword(name: string, input: Json): Promise<void>;
  listUsers(query: { query?: string }): Promise<ListResult>;
  updateUser(name: string, changes: Json): Promise<Json>;
  deleteUser(name: string): Promise<void>;
  createProject(input: Json): Promise<Json>;
  listProjects(query: { query?: string }): Promise<ListResult>;
  listMembers(project: string): Promise<ListResult>;
  setMember(project: string, user: string, role: string): Promise<void>;
  removeMember(project: string, user: string): Promise<void>;
  createRobot(input: Json): Promise<Json>;
  listRobots(query: { project?: string; system?: boolean }): Promise<ListResult>;
  deleteRobot(id: string): Promise<void>;
  createToken(input: Json): Promise<Json>;
  listTokens(user?: string): Promise<ListResult>;
  revokeToken(id: string): Promise<void>;
  rotateKey(): Promise<Json>;
  listWebhooks(project?: string): Promise<ListResult>;
  createWebhook(input: Json): Promise<Json>;
  deleteWebhook(id: string): Promise<void>;
  testWebhook(id: string): Promise<Json>;
  webhookDeliveries(id: string): Promise<ListResult>;
  redeliver(id: string, delivery: string): Promise<Json>;
  close(): Promise<void>;
}

const everything = { offset: 0, limit: 10_000 };

/** JSON as the API would send it (dates as ISO strings). */
function json<T>(value: T): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}

/**
 * Directly on the configured metadata database (SQLite of a data directory, or PostgreSQL), as
 * a system administrator (whoever can write the database owns the registry anyway). Safe while
 * servers run: the database serialises writers, and servers pick up revocations within seconds
 * and other changes within their 5 s caches.
 */
export async function localClient(config: ResolvedConfig): Promise<ControlClient> {
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const metadata = await openMetadataStore(config);
  const audit = new AuditLog(metadata.control.audit, logger);
  const control: Control = createControl(metadata, createAuthService(config, metadata, audit, logger), audit, undefined, recorderOptions(config));
  const actor: Actor = systemActor(`cli:${safeUserName()}`);
  return {
    mode: 'local',
    createUser: async (input) => {
      const { user, generatedPassword } = await control.users.create(actor, input);
      return json(generatedPassword ? { user, password: generatedPassword } : { user });
    },
    setPassword: (name, input) => control.users.setPassword(actor, name, input),
    listUsers: async (query) => json(await control.users.list(actor, query, everything)) as unknown as ListResult,
    updateUser: async (name, changes) => json(await control.users.update(actor, name, changes)),
    deleteUser: (name) => control.users.delete(actor, name),
    createProject: async (input) => json(await control.projects.create(actor, input)),
    listProjects: async (query) => json(await control.projects.list(actor, query, everything)) as unknown as ListResult,
    listMembers: async (project) => json({ items: await control.projects.members(actor, project) }) as unknown as ListResult,
    setMember: (project, user, role) => control.projects.setMember(actor, project, user, { role }),
    removeMember: (project, user) => control.projects.removeMember(actor, project, user),
    createRobot: async (input) => json(await control.robots.create(actor, input)),
    listRobots: async (query) =>
      json(await control.robots.list(actor, query.system ? { project: null } : { project: query.project }, everything)) as unknown as ListResult,
    deleteRobot: (id) => control.robots.delete(actor, id),
    createToken: async (input) => json(await control.tokens.create(actor, input)),
    listTokens: async (user) => json({ items: await control.tokens.list(actor, user) }) as unknown as ListResult,
    revokeToken: (id) => control.tokens.revoke(actor, id),
    rotateKey: async () => {
      const kid = await control.auth.keyring.rotate();
      audit.record(actor, { action: 'key.rotate', result: 'success', target: kid, project: null });
      return { kid };
    },
    listWebhooks: async (project) => json({ items: await control.webhooks.list(actor, project) }) as unknown as ListResult,
    createWebhook: async (input) => json(await control.webhooks.create(actor, input)),
    deleteWebhook: (id) => control.webhooks.delete(actor, id),
    testWebhook: async (id) => json(await control.webhooks.test(actor, id)),
    webhookDeliveries: async (id) => json(await control.webhooks.deliveries(actor, id, { offset: 0, limit: 500 })) as unknown as ListResult,
    redeliver: async (id, delivery) => json(await control.webhooks.redeliver(actor, id, delivery)),
    async close() {
      await audit.flush();
      await metadata.close();
    },
  };
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

/** A failed API call, with the API's error. */
export class RemoteError extends ControlError {}

/** Over the management API of a running Stowage, with Basic credentials (password or token). */
export function remoteClient(server: string, username: string, password: string): ControlClient {
  const base = `${server.replace(/\/+$/, '')}/api/v1`;
  const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  async function call(method: string, path: string, body?: unknown): Promise<Json | undefined> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const parsed = text === '' ? undefined : (JSON.parse(text) as Json);
    if (!response.ok) {
      const error = (parsed?.error ?? {}) as { code?: string; message?: string; fields?: { field: string; message: string }[] };
      const code = ({ 400: 'invalid', 401: 'unauthorized', 403: 'forbidden', 404: 'not-found', 409: 'conflict', 429: 'too-many-requests' } as const)[
        response.status as 400
      ];
      throw new RemoteError(code ?? 'invalid', error.message ?? `${method} ${path}: HTTP ${response.status}`, error.fields ?? []);
    }
    return parsed;
  }
  const enc = encodeURIComponent;
  const list = async (path: string): Promise<ListResult> => (await call('GET', path)) as unknown as ListResult;
  const query = (params: Record<string, string | undefined>) => {
    const entries = Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined);
    return new URLSearchParams([...entries, ['page_size', '500']]).toString();
  };
  return {
    mode: 'remote',
    createUser: async (input) => (await call('POST', '/users', input))!,
    setPassword: async (name, input) => void (await call('PUT', `/users/${enc(name)}/password`, input)),
    listUsers: (q) => list(`/users?${query({ query: q.query })}`),
    updateUser: async (name, changes) => (await call('PATCH', `/users/${enc(name)}`, changes))!,
    deleteUser: async (name) => void (await call('DELETE', `/users/${enc(name)}`)),
    createProject: async (input) => (await call('POST', '/projects', input))!,
    listProjects: (q) => list(`/projects?${query({ query: q.query })}`),
    listMembers: (project) => list(`/projects/${enc(project)}/members`),
    setMember: async (project, user, role) => void (await call('PUT', `/projects/${enc(project)}/members/${enc(user)}`, { role })),
    removeMember: async (project, user) => void (await call('DELETE', `/projects/${enc(project)}/members/${enc(user)}`)),
    createRobot: async (input) => (await call('POST', '/robots', input))!,
    listRobots: (q) => list(`/robots?${query({ project: q.project, system: q.system ? 'true' : undefined })}`),
    deleteRobot: async (id) => void (await call('DELETE', `/robots/${enc(id)}`)),
    createToken: async (input) => (await call('POST', '/tokens', input))!,
    listTokens: async (user) => (await call('GET', `/tokens${user ? `?user=${enc(user)}` : ''}`)) as unknown as ListResult,
    revokeToken: async (id) => void (await call('DELETE', `/tokens/${enc(id)}`)),
    rotateKey: async () => (await call('POST', '/keys/rotate'))!,
    listWebhooks: (project) => list(`/webhooks${project ? `?project=${enc(project)}` : ''}`),
    createWebhook: async (input) => (await call('POST', '/webhooks', input))!,
    deleteWebhook: async (id) => void (await call('DELETE', `/webhooks/${enc(id)}`)),
    testWebhook: async (id) => (await call('POST', `/webhooks/${enc(id)}/test`))!,
    webhookDeliveries: (id) => list(`/webhooks/${enc(id)}/deliveries?page_size=500`),
    redeliver: async (id, delivery) => (await call('POST', `/webhooks/${enc(id)}/deliveries/${enc(delivery)}/redeliver`))!,
    async close() {},
  };
}
