import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AuthenticationError } from '../../auth/authenticators.js';
import { anonymous, type Actor, type Principal } from '../../auth/principal.js';
import { safeEqual } from '../../auth/secrets.js';
import { TooManyFailuresError } from '../../auth/throttle.js';
import type { Control } from '../../control/control.js';
import { ControlError } from '../../control/errors.js';
import { clientAddress, presentedCredentials } from '../auth/credentials.js';
import { apiRoutes, type ApiContext, type ApiRoute } from './routes.js';
import { openApiDocument } from './openapi.js';

export const apiPrefix = '/api/v1';
export const sessionCookie = 'stowage_session';

export interface ApiOptions {
  control: Control;
  /** `auth: none`: every request acts as an administrator. */
  open: boolean;
  version: string;
}

interface CompiledRoute {
  route: ApiRoute;
  regex: RegExp;
  names: string[];
}

/**
 * The management API under /api/v1: one dispatcher over the route table of routes.ts (which
 * also makes the OpenAPI document). Authentication: a web session cookie (with the CSRF token in
 * `X-CSRF-Token` for state-changing requests), or Basic credentials (password, or a personal
 * access token with the `api` scope), or none (anonymous: public projects only). Errors are
 * `{"error":{"code","message","fields"?}}`.
 */
export async function apiPlugin(app: FastifyInstance, options: ApiOptions) {
  const compiled = apiRoutes.map(compile);
  // Body parsing errors (malformed JSON, too large) in the API's error format.
  app.setErrorHandler((error, request, reply) => sendControlError(request, reply, error));
  const document = openApiDocument(apiRoutes, apiPrefix, options.version);

  app.get(`${apiPrefix}/openapi.json`, async (request, reply) => {
    request.routeLabel = 'api_openapi';
    return reply.send(document);
  });

  app.route({
    method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: `${apiPrefix}/*`,
    handler: async (request, reply) => {
      const path = request.url.slice(apiPrefix.length).split('?', 1)[0]!;
      try {
        const candidates = compiled.map((c) => ({ c, match: c.regex.exec(path) })).filter((x) => x.match);
        if (candidates.length === 0) throw new ControlError('not-found', `no API endpoint ${request.method} ${apiPrefix}${path.slice(0, 200)}`);
        const found = candidates.find((x) => x.c.route.method === request.method);
        if (!found) {
          reply.header('allow', candidates.map((x) => x.c.route.method).join(', '));
          return sendApiError(reply, 405, 'METHOD_NOT_ALLOWED', `${request.method} is not allowed here`);
        }
        const { route, names } = found.c;
        request.routeLabel = `api ${route.method} ${route.path}`;
        const params: Record<string, string> = {};
        names.forEach((name, i) => (params[name] = decodeURIComponent(found.match![i + 1]!)));
        const actor = await resolveActor(request, reply, options, route);
        const ctx: ApiContext = {
          actor,
          params,
          query: parseQuery(request, route),
          body: request.body,
          request,
          reply,
          control: options.control,
        };
        const result = await route.handle(ctx);
        if (reply.sent) return reply;
        if (result === undefined) return reply.code(route.status ?? 204).send();
        return reply.code(route.status ?? 200).send(result);
      } catch (error) {
        return sendControlError(request, reply, error);
      }
    },
  });
}

function compile(route: ApiRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    names.push(name);
    // Repository names contain slashes; `/-/` cannot occur in them, so it separates what follows.
    return name === 'repository' ? '([a-z0-9][a-z0-9._/-]*?)' : '([^/]+)';
  });
  return { route, regex: new RegExp(`^${source}$`), names };
}

/** The query string parsed by the route's schema (errors name `query.<field>`). */
function parseQuery(request: FastifyRequest, route: ApiRoute): Record<string, unknown> {
  const raw = Object.fromEntries(new URLSearchParams(request.url.split('?')[1] ?? ''));
  if (!route.query) return raw;
  const result = route.query.safeParse(raw);
  if (!result.success) throw ControlError.fromZod(result.error, 'query');
  return result.data as Record<string, unknown>;
}

/** Who makes the request: session (with CSRF check), Basic credentials, or anonymous. */
async function resolveActor(request: FastifyRequest, reply: FastifyReply, options: ApiOptions, route: ApiRoute): Promise<Actor> {
  const address = clientAddress(request);
  if (options.open) return { principal: { kind: 'user', id: '', name: 'anonymous', admin: true }, address };
  const auth = options.control.auth;
  const cookie = readCookie(request, sessionCookie);
  const presented = presentedCredentials(request);
  if (presented.scheme === 'basic') {
    try {
      return { principal: await auth.loginEachRequest(presented.credentials, { address, method: 'api' }), address };
    } catch (error) {
      if (error instanceof TooManyFailuresError) throw new ControlError('too-many-requests', error.message, [], error.retryAfterSeconds);
      if (error instanceof AuthenticationError) throw new ControlError('unauthorized', error.message);
      throw error;
    }
  }
  if (presented.scheme !== 'none') throw new ControlError('unauthorized', 'use Basic credentials (user and password or personal access token) or a session');
  if (cookie !== undefined && route.path !== '/session') {
    const session = await auth.session(cookie);
    if (!session) {
      clearSessionCookie(reply);
      throw new ControlError('unauthorized', 'the session has expired; log in again');
    }
    if (!['GET', 'HEAD'].includes(request.method)) {
      const given = request.headers['x-csrf-token'];
      if (typeof given !== 'string' || !safeEqual(given, session.csrfToken)) {
        throw new ControlError('forbidden', 'missing or wrong X-CSRF-Token header (from the login response or GET /api/v1/session)');
      }
    }
    return { principal: session.principal, address };
  }
  return { principal: anonymous as Principal, address };
}

export function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

export function setSessionCookie(request: FastifyRequest, reply: FastifyReply, secret: string, maxAgeSeconds: number): void {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  reply.header('set-cookie', `${sessionCookie}=${encodeURIComponent(secret)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`);
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.header('set-cookie', `${sessionCookie}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
}

const statuses: Record<ControlError['code'], [number, string]> = {
  invalid: [400, 'INVALID'],
  unauthorized: [401, 'UNAUTHORIZED'],
  forbidden: [403, 'FORBIDDEN'],
  'not-found': [404, 'NOT_FOUND'],
  conflict: [409, 'CONFLICT'],
  'too-many-requests': [429, 'TOO_MANY_REQUESTS'],
};

function sendApiError(reply: FastifyReply, status: number, code: string, message: string, fields?: { field: string; message: string }[]) {
  return reply
    .code(status)
    .type('application/json')
    .send({ error: { code, message, ...(fields && fields.length > 0 ? { fields } : {}) } });
}

/** The one mapping of API errors to responses. */
export function sendControlError(request: FastifyRequest, reply: FastifyReply, error: unknown) {
  if (error instanceof ControlError) {
    const [status, code] = statuses[error.code];
    if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter));
    return sendApiError(reply, status, code, error.message, error.fields);
  }
  if (error instanceof z.ZodError) {
    const converted = ControlError.fromZod(error);
    return sendApiError(reply, 400, 'INVALID', converted.message, converted.fields);
  }
  const status = (error as { statusCode?: number }).statusCode;
  if (status && status >= 400 && status < 500) return sendApiError(reply, status, 'INVALID', (error as Error).message);
  request.log.error({ err: error }, 'API request failed');
  return sendApiError(reply, 500, 'INTERNAL', `internal error; see the server log for request ${request.id}`);
}
