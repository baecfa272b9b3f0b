import type { FastifyRequest } from 'fastify';
import { covers, formatScope, type Access } from '../../auth/access.js';
import { AuthenticationError } from '../../auth/authenticators.js';
import { anonymous, type Actor, type Principal } from '../../auth/principal.js';
import type { AuthService } from '../../auth/service.js';
import { TooManyFailuresError } from '../../auth/throttle.js';
import { InvalidTokenError, type TokenClaims } from '../../auth/tokens.js';
import type { ProjectService } from '../../control/projects.js';
import { RegistryError } from '../../registry/errors.js';
import { clientAddress, presentedCredentials } from './credentials.js';

/** Who a /v2 request acts as, and what it may do beyond what its route needed. */
export interface RequestAuth {
  /** For the audit log (for bearer tokens built from the claims, without a query). */
  actor: Actor;
  /** The full principal, when a decision needs it (loaded on demand). */
  principal(): Promise<Principal>;
  /** Whether the request may also do `access` (e.g. pull from a mount's source). */
  permits(access: Access): Promise<boolean>;
  /** A filter of the repositories it may pull (for the catalog); undefined when it may pull all. */
  pullFilter(): Promise<((repository: string) => Promise<boolean>) | undefined>;
}

/** Authentication and authorization of /v2 requests. */
export interface RegistryGuard {
  /**
   * Authenticates the request and checks that it may do everything in `needed`. Throws
   * RegistryError: 401 with a Bearer challenge (no or insufficient credentials), 403 (an
   * authenticated principal without the permission) or 429 (too many failed logins).
   * With `needed` empty, any authenticated request passes (the /v2/ version check).
   */
  check(request: FastifyRequest, needed: Access[]): Promise<RequestAuth>;
  /** Before the first write of a push: creates the project when the pusher may. */
  beforePush(auth: RequestAuth, repository: string): Promise<void>;
}

const openActor: Actor = { principal: { kind: 'user', id: '', name: 'anonymous', admin: true }, address: null };

/** `auth: none`: everyone may do everything. */
export const openGuard: RegistryGuard = {
  async check(request) {
    return {
      actor: { ...openActor, address: clientAddress(request) },
      principal: async () => openActor.principal,
      permits: async () => true,
      pullFilter: async () => undefined,
    };
  },
  async beforePush() {},
};

export interface TokenGuardOptions {
  service: string;
  /** Fixed realm URL; by default `<scheme>://<host>/auth/token` of each request. */
  realm?: string;
  /** Accept Basic credentials directly. */
  basic: boolean;
}

/** Docker token authentication on /v2, with optional Basic credentials. */
export class TokenGuard implements RegistryGuard {
  constructor(
    private readonly auth: AuthService,
    private readonly projects: ProjectService,
    private readonly options: TokenGuardOptions,
  ) {}

  async check(request: FastifyRequest, needed: Access[]): Promise<RequestAuth> {
    const presented = presentedCredentials(request);
    const address = clientAddress(request);
    if (presented.scheme === 'bearer') {
      let claims: TokenClaims;
      try {
        claims = await this.auth.verifyToken(presented.token);
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        throw this.challenge(request, needed, 'invalid_token', `invalid bearer token: ${error.reason}`);
      }
      for (const access of needed) {
        if (!covers(claims.access, access)) throw this.challenge(request, needed, 'insufficient_scope', 'the token does not grant the access this request needs');
      }
      return this.fromClaims(claims, address);
    }
    if (presented.scheme === 'basic' && this.options.basic) {
      let principal: Principal;
      try {
        principal = await this.auth.loginEachRequest(presented.credentials, { address, method: 'basic' });
      } catch (error) {
        if (error instanceof TooManyFailuresError) throw tooMany(error);
        if (error instanceof AuthenticationError) throw this.challenge(request, needed, 'invalid_token', error.message);
        throw error;
      }
      for (const access of needed) {
        if (!(await this.auth.authorizer.allows(principal, access))) throw denied(access);
      }
      return this.fromPrincipal(principal, address);
    }
    // Anonymous (Basic when it is not accepted here counts as nothing presented).
    if (needed.length === 0) throw this.challenge(request, needed, undefined, 'authentication required');
    for (const access of needed) {
      if (!(await this.auth.authorizer.allows(anonymous, access))) throw this.challenge(request, needed, undefined, 'authentication required');
    }
    return this.fromPrincipal(anonymous, address);
  }

  async beforePush(auth: RequestAuth, repository: string): Promise<void> {
    if (auth.actor.principal.kind !== 'user') return;
    try {
      await this.projects.ensureForPush({ principal: await auth.principal(), address: auth.actor.address }, repository);
    } catch (error) {
      if ((error as { code?: string }).code === 'forbidden') throw new RegistryError('DENIED', (error as Error).message, { name: repository });
      throw error;
    }
  }

  private fromClaims(claims: TokenClaims, address: string): RequestAuth {
    const light: Principal =
      claims.kind === 'anonymous' || claims.principalId === null
        ? anonymous
        : claims.kind === 'robot'
          ? { kind: 'robot', id: claims.principalId, name: claims.subject, project: null, permissions: [] }
          : { kind: 'user', id: claims.principalId, name: claims.subject, admin: false };
    const principal = () => this.auth.principalOf(claims);
    return {
      actor: { principal: light, address },
      principal,
      permits: async (access) => covers(claims.access, access),
      pullFilter: async () => this.pullFilter(await principal()),
    };
  }

  private fromPrincipal(principal: Principal, address: string): RequestAuth {
    return {
      actor: { principal, address },
      principal: async () => principal,
      permits: (access) => this.auth.authorizer.allows(principal, access),
      pullFilter: async () => this.pullFilter(principal),
    };
  }

  private async pullFilter(principal: Principal): Promise<((repository: string) => Promise<boolean>) | undefined> {
    if (await this.auth.authorizer.allows(principal, { type: 'system', name: 'admin', actions: ['*'] })) return undefined;
    return (name) => this.auth.authorizer.allows(principal, { type: 'repository', name, actions: ['pull'] });
  }

  /** 401 with the Bearer challenge naming the scope the request needs. */
  private challenge(request: FastifyRequest, needed: Access[], error: 'invalid_token' | 'insufficient_scope' | undefined, message: string): RegistryError {
    const realm = this.options.realm ?? `${request.protocol}://${request.host}/auth/token`;
    const scope = formatScope(needed);
    const parts = [`realm="${realm}"`, `service="${this.options.service}"`];
    if (scope !== '') parts.push(`scope="${scope}"`);
    if (error) parts.push(`error="${error}"`);
    const detail = needed.flatMap((a) => a.actions.map((action) => ({ Type: a.type, Name: a.name, Action: action })));
    return new RegistryError('UNAUTHORIZED', message, detail.length > 0 ? detail : null, { 'www-authenticate': `Bearer ${parts.join(',')}` });
  }
}

function denied(access: Access): RegistryError {
  return new RegistryError('DENIED', `requested access to the resource is denied: ${formatScope([access])}`, { Type: access.type, Name: access.name, Action: access.actions.join(',') });
}

function tooMany(error: TooManyFailuresError): RegistryError {
  return new RegistryError('TOO_MANY_REQUESTS', error.message, null, { 'retry-after': String(error.retryAfterSeconds) });
}
