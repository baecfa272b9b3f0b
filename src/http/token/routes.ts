import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseScope, ScopeError, formatScope, type Access } from '../../auth/access.js';
import { AuthenticationError } from '../../auth/authenticators.js';
import { anonymous, type Principal } from '../../auth/principal.js';
import type { AuthService, LoginContext } from '../../auth/service.js';
import { TooManyFailuresError } from '../../auth/throttle.js';
import { clientAddress, presentedCredentials } from '../auth/credentials.js';

export interface TokenRoutesOptions {
  auth: AuthService;
  service: string;
}

/** The token endpoint's path; the /v2 challenge names it as the realm. */
export const tokenPath = '/auth/token';

/**
 * The token endpoint of the Docker token specification:
 * - `GET` with optional Basic credentials and `service`, `scope` (repeatable, each possibly a
 *   space-separated list), `offline_token`, `account`, `client_id` (docker, podman, skopeo);
 * - `POST` (application/x-www-form-urlencoded) with the OAuth2 `password` and `refresh_token`
 *   grants (containerd tries this first, docker uses it with a stored refresh token).
 * The token carries the intersection of the requested and the granted access; asking for more
 * than allowed is not an error.
 */
export async function tokenRoutes(app: FastifyInstance, { auth, service }: TokenRoutesOptions) {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.get(tokenPath, async (request, reply) => {
    request.routeLabel = 'token';
    const query = new URLSearchParams(request.url.slice(request.url.indexOf('?') + 1 || request.url.length));
    const context: LoginContext = { address: clientAddress(request), method: 'token' };
    noStore(reply);
    const wrongService = checkService(query.get('service'), service);
    if (wrongService) return registryError(reply, 400, 'INVALID_REQUEST', wrongService);
    let requested: Access[];
    try {
      requested = query.getAll('scope').flatMap((scope) => parseScope(scope));
    } catch (error) {
      if (error instanceof ScopeError) return registryError(reply, 400, 'INVALID_REQUEST', error.message);
      throw error;
    }
    const presented = presentedCredentials(request);
    let principal: Principal = anonymous;
    if (presented.scheme === 'basic') {
      try {
        // Clients ask for a token per repository and push with the same credentials (docker,
        // containerd, CI scripts): one argon2 verification a minute, not one per token.
        principal = await auth.loginEachRequest(presented.credentials, context);
      } catch (error) {
        if (error instanceof TooManyFailuresError) return registryError(retryAfter(reply, error), 429, 'TOO_MANY_REQUESTS', error.message);
        // No `WWW-Authenticate: Basic` challenge: a browser would prompt, then send the cached
        // credentials with cross-site requests (CSRF). Registry clients need only the status.
        if (error instanceof AuthenticationError) return registryError(reply, 401, 'UNAUTHORIZED', error.message);
        throw error;
      }
    } else if (presented.scheme !== 'none') {
      return registryError(reply, 401, 'UNAUTHORIZED', 'the token endpoint takes Basic credentials (or none, for anonymous access)');
    }
    const issued = await auth.issueToken(principal, requested);
    const offline = query.get('offline_token') === 'true' && principal.kind !== 'anonymous';
    return reply.send({
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt.toISOString(),
      ...(offline ? { refresh_token: await auth.createRefreshToken(principal) } : {}),
    });
  });

  app.post(tokenPath, async (request, reply) => {
    request.routeLabel = 'token';
    noStore(reply);
    const form = request.body;
    if (typeof form !== 'object' || form === null || Array.isArray(form)) {
      return oauthError(reply, 400, 'invalid_request', 'send the grant as application/x-www-form-urlencoded');
    }
    const field = (name: string): string | undefined => {
      const value = (form as Record<string, unknown>)[name];
      return typeof value === 'string' ? value : undefined;
    };
    const wrongService = checkService(field('service') ?? null, service);
    if (wrongService) return oauthError(reply, 400, 'invalid_request', wrongService);
    let requested: Access[];
    try {
      requested = parseScope(field('scope') ?? '');
    } catch (error) {
      if (error instanceof ScopeError) return oauthError(reply, 400, 'invalid_scope', error.message);
      throw error;
    }
    const context: LoginContext = { address: clientAddress(request), method: 'oauth' };
    const grant = field('grant_type');
    let principal: Principal;
    let refreshToken: string | undefined;
    try {
      if (grant === 'password') {
        const username = field('username');
        const password = field('password');
        if (!username || !password) return oauthError(reply, 400, 'invalid_request', 'the password grant needs username and password');
        principal = await auth.login({ username, password }, context);
        if (field('access_type') === 'offline') refreshToken = await auth.createRefreshToken(principal);
      } else if (grant === 'refresh_token') {
        const given = field('refresh_token');
        if (!given) return oauthError(reply, 400, 'invalid_request', 'the refresh_token grant needs refresh_token');
        principal = await auth.useRefreshToken(given, { ...context, method: 'refresh' });
        refreshToken = given;
      } else {
        return oauthError(reply, 400, 'unsupported_grant_type', 'grant_type must be password or refresh_token');
      }
    } catch (error) {
      if (error instanceof TooManyFailuresError) return oauthError(retryAfter(reply, error), 429, 'slow_down', error.message);
      if (error instanceof AuthenticationError) return oauthError(reply, 401, 'invalid_grant', error.message);
      throw error;
    }
    const issued = await auth.issueToken(principal, requested);
    return reply.send({
      access_token: issued.token,
      token: issued.token,
      token_type: 'Bearer',
      scope: formatScope(issued.access),
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt.toISOString(),
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    });
  });
}

function checkService(given: string | null, service: string): string | undefined {
  return given !== null && given !== '' && given !== service ? `unknown service "${given.slice(0, 100)}": this registry is "${service}"` : undefined;
}

function noStore(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

function registryError(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).type('application/json').send({ errors: [{ code, message, detail: null }] });
}

function oauthError(reply: FastifyReply, status: number, error: string, description: string) {
  return reply.code(status).type('application/json').send({ error, error_description: description });
}

function retryAfter(reply: FastifyReply, error: TooManyFailuresError): FastifyReply {
  return reply.header('retry-after', String(error.retryAfterSeconds));
}

