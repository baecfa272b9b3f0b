import type { Logger } from 'pino';
import type { ControlStore } from '../metadata/control-store.js';
import type { AuditLog } from '../control/audit.js';
import { mergeAccess, type Access } from './access.js';
import {
  AuthenticationError,
  AuthenticatorChain,
  LocalPasswordAuthenticator,
  parseTokenScopes,
  PersonalTokenAuthenticator,
  RobotAuthenticator,
  robotPrincipal,
  userPrincipal,
  type Authenticator,
  type Credentials,
} from './authenticators.js';
import { Authorizer, type AuthorizerOptions } from './authorizer.js';
import { SigningKeyring } from './keys.js';
import { CachedPolicySource } from './policy-cache.js';
import { anonymous, revocationSubjects, type Principal } from './principal.js';
import { RevocationList } from './revocations.js';
import { newSecret, secretHash, secretPrefix } from './secrets.js';
import { LoginThrottle, TooManyFailuresError, type ThrottleOptions } from './throttle.js';
import { TokenService, type TokenClaims } from './tokens.js';

export interface AuthServiceOptions extends AuthorizerOptions {
  service: string;
  issuer: string;
  tokenTtlMs: number;
  refreshTokenTtlMs: number;
  sessionTtlMs: number;
  loginFailures: Omit<ThrottleOptions, 'now'>;
  /** Extra authenticators tried after robots and personal tokens, before local passwords. */
  identityProviders?: Authenticator[];
  /** How often revocations by other processes are picked up. Default 2 s. */
  revocationPollMs?: number;
  now?: () => number;
}

export type LoginMethod = 'token' | 'oauth' | 'refresh' | 'basic' | 'session' | 'api';

export interface LoginContext {
  address: string | null;
  method: LoginMethod;
}

/** How long a Basic credential verified on /v2 or the API is trusted without a new check. */
const BASIC_CACHE_MS = 60_000;

/**
 * Authentication and token issuance: verifies credentials (robots, personal access tokens,
 * external providers, local passwords) under the login rate limit, records every login in the
 * audit log, issues bearer tokens with the granted part of the requested access, verifies them,
 * and keeps refresh tokens, web sessions and revocations.
 */
export class AuthService {
  readonly authorizer: Authorizer;
  readonly tokens: TokenService;
  readonly keyring: SigningKeyring;
  readonly revocations: RevocationList;
  readonly policy: CachedPolicySource;
  private readonly chain: AuthenticatorChain;
  private readonly throttle: LoginThrottle;
  private readonly basicCache = new Map<string, { principal: Principal; until: number }>();
  /** Verifications of Basic credentials under way, by credentials and address (see loginEachRequest). */
  private readonly basicVerifying = new Map<string, Promise<Principal>>();
  /** Counts the clearings of basicCache, so that a verification begun before one is not remembered. */
  private basicGeneration = 0;
  private readonly principals = new Map<string, { principal: Principal | null; until: number }>();
  private readonly now: () => number;

  constructor(
    private readonly store: ControlStore,
    private readonly audit: AuditLog,
    private readonly logger: Logger,
    readonly options: AuthServiceOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.policy = new CachedPolicySource(store, { now: this.now });
    this.authorizer = new Authorizer(this.policy, options);
    this.keyring = new SigningKeyring(store.signingKeys, { tokenTtlMs: options.tokenTtlMs, now: this.now });
    this.revocations = new RevocationList(store.revocations, {
      keepMs: options.tokenTtlMs + BASIC_CACHE_MS + 10 * 60_000,
      pollMs: options.revocationPollMs,
      now: this.now,
    });
    this.tokens = new TokenService(this.keyring, this.revocations, {
      issuer: options.issuer,
      service: options.service,
      ttlMs: options.tokenTtlMs,
      now: this.now,
    });
    this.chain = new AuthenticatorChain([
      new RobotAuthenticator(store, this.now),
      new PersonalTokenAuthenticator(store, this.now),
      ...(options.identityProviders ?? []),
      new LocalPasswordAuthenticator(store),
    ]);
    this.throttle = new LoginThrottle(store.loginFailures, { ...options.loginFailures, now: this.now });
    this.revocations.onChange(() => this.forgetCachedPrincipals());
  }

  /** Loads (or creates) the signing keys and starts following revocations. */
  async start(): Promise<void> {
    await this.keyring.init();
    await this.revocations.start();
  }

  stop(): void {
    this.revocations.stop();
  }

  /**
   * Verifies credentials. Rejects with TooManyFailuresError (before checking anything) when the
   * user or address is over the failure limit, and with AuthenticationError when they are
   * wrong; both are logged and audited, without the password.
   */
  async login(credentials: Credentials, context: LoginContext): Promise<Principal> {
    const actor = (principal: Principal) => ({ principal, address: context.address });
    const unknown = { kind: 'user', id: '', name: credentials.username.slice(0, 200), admin: false } as const;
    try {
      await this.throttle.check(credentials.username, context.address);
    } catch (error) {
      if (error instanceof TooManyFailuresError) {
        this.logger.warn({ user: unknown.name, address: context.address, method: context.method }, 'login refused: too many failures');
        this.audit.record(actor(unknown), { action: 'login', result: 'denied', target: unknown.name, project: null, detail: { method: context.method, reason: 'rate limited' } });
      }
      throw error;
    }
    try {
      const principal = await this.chain.authenticate(credentials);
      await this.throttle.succeeded(credentials.username);
      this.audit.record(actor(principal), { action: 'login', result: 'success', target: principal.name, project: null, detail: { method: context.method } });
      return principal;
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      await this.throttle.failed(credentials.username, context.address);
      this.logger.warn({ user: unknown.name, address: context.address, method: context.method, reason: error.reason }, 'login failed');
      this.audit.record(actor(unknown), { action: 'login', result: 'failure', target: unknown.name, project: null, detail: { method: context.method, reason: error.reason } });
      throw error;
    }
  }

  /**
   * `login` for credentials sent with every request (Basic on /v2 and the API, and the token
   * endpoint): a success is remembered for a minute by a hash of the credentials, so that a script
   * does not pay an argon2 verification per request. Revocations (disable, delete, password
   * change) clear it. Requests that arrive with the same credentials from the same address while
   * they are being verified wait for that verification instead of starting their own (each takes
   * 19 MiB and ≈ 15 ms; a client opening many connections at once could make a process run one
   * per thread-pool thread at the same time); if it fails, each goes on to its own, so every failed attempt is
   * verified, throttled and audited by itself.
   */
  async loginEachRequest(credentials: Credentials, context: LoginContext): Promise<Principal> {
    const key = secretHash(`${credentials.username}\u0000${credentials.password}`);
    const hit = this.basicCache.get(key);
    if (hit && hit.until > this.now()) return hit.principal;
    const inFlight = `${key}\u0000${context.address ?? ''}`;
    const shared = this.basicVerifying.get(inFlight);
    if (shared) {
      const principal = await shared.catch(() => null);
      if (principal) return principal;
      return this.login(credentials, context);
    }
    const generation = this.basicGeneration;
    const verifying = this.login(credentials, context).then((principal) => {
      // Not remembered when a revocation cleared the cache while it was verified.
      if (generation === this.basicGeneration) {
        if (this.basicCache.size >= 10_000) this.basicCache.clear();
        this.basicCache.set(key, { principal, until: this.now() + BASIC_CACHE_MS });
      }
      return principal;
    });
    this.basicVerifying.set(inFlight, verifying);
    try {
      return await verifying;
    } finally {
      this.basicVerifying.delete(inFlight);
    }
  }

  /** The granted part of each requested access (entries with nothing granted are dropped). */
  async grant(principal: Principal, requested: Access[]): Promise<Access[]> {
    const granted: Access[] = [];
    for (const access of mergeAccess(requested)) {
      const actions = await this.authorizer.authorize(principal, access);
      if (actions.length > 0) granted.push({ type: access.type, name: access.name, actions });
    }
    return granted;
  }

  async issueToken(principal: Principal, requested: Access[]) {
    const access = await this.grant(principal, requested);
    const issued = await this.tokens.issue(principal, access);
    return { ...issued, access };
  }

  verifyToken(token: string): Promise<TokenClaims> {
    return this.tokens.verify(token);
  }

  /** The principal behind a verified token, as it is now (cached for 5 s); anonymous if it is gone. */
  async principalOf(claims: TokenClaims): Promise<Principal> {
    if (claims.kind === 'anonymous' || claims.principalId === null) return anonymous;
    const key = `${claims.kind}:${claims.principalId}:${claims.personalTokenId ?? ''}`;
    const hit = this.principals.get(key);
    if (hit && hit.until > this.now()) return hit.principal ?? anonymous;
    const principal = await this.loadPrincipal(claims.kind, claims.principalId, claims.personalTokenId);
    if (this.principals.size >= 10_000) this.principals.clear();
    this.principals.set(key, { principal, until: this.now() + 5000 });
    return principal ?? anonymous;
  }

  // -------------------------------------------------------------------------------------------
  // Refresh tokens (offline_token / access_type=offline)
  // -------------------------------------------------------------------------------------------

  async createRefreshToken(principal: Principal): Promise<string> {
    if (principal.kind === 'anonymous') throw new Error('anonymous principals get no refresh token');
    const secret = newSecret(secretPrefix.refresh);
    await this.store.refreshTokens.create({
      tokenHash: secretHash(secret),
      subjectKind: principal.kind,
      subjectId: principal.id,
      personalTokenId: principal.kind === 'user' ? (principal.personalToken?.id ?? null) : null,
      service: this.options.service,
      expiresAt: new Date(this.now() + this.options.refreshTokenTtlMs),
    });
    return secret;
  }

  /** The principal of a refresh token; AuthenticationError when it is unknown, expired or void. */
  async useRefreshToken(secret: string, context: LoginContext): Promise<Principal> {
    const record = secret.startsWith(secretPrefix.refresh) ? await this.store.refreshTokens.use(secretHash(secret)) : null;
    const principal =
      record && record.service === this.options.service
        ? await this.loadPrincipal(record.subjectKind, record.subjectId, record.personalTokenId)
        : null;
    if (!principal || this.revocations.revoked(revocationSubjects(principal), record!.createdAt.getTime())) {
      const reason = record ? 'refresh token of a disabled, deleted or revoked principal' : 'unknown or expired refresh token';
      this.logger.warn({ address: context.address, reason }, 'refresh token refused');
      this.audit.record({ principal: anonymous, address: context.address }, { action: 'login', result: 'failure', project: null, detail: { method: 'refresh', reason } });
      throw new AuthenticationError(reason);
    }
    return principal;
  }

  // -------------------------------------------------------------------------------------------
  // Web sessions
  // -------------------------------------------------------------------------------------------

  async createSession(principal: Principal, address: string | null): Promise<{ secret: string; csrfToken: string; expiresAt: Date }> {
    if (principal.kind !== 'user' || principal.personalToken) throw new AuthenticationError('only users with a password get web sessions');
    const secret = newSecret(secretPrefix.session);
    const csrfToken = newSecret('');
    const expiresAt = new Date(this.now() + this.options.sessionTtlMs);
    await this.store.sessions.create({ tokenHash: secretHash(secret), userId: principal.id, csrfToken, address, expiresAt });
    return { secret, csrfToken, expiresAt };
  }

  async session(secret: string): Promise<{ principal: Principal; csrfToken: string } | null> {
    if (!secret.startsWith(secretPrefix.session)) return null;
    const session = await this.store.sessions.use(secretHash(secret));
    if (!session) return null;
    const principal = await this.loadPrincipal('user', session.userId, null);
    return principal ? { principal, csrfToken: session.csrfToken } : null;
  }

  async endSession(secret: string): Promise<void> {
    await this.store.sessions.delete(secretHash(secret));
  }

  // -------------------------------------------------------------------------------------------
  // Revocation
  // -------------------------------------------------------------------------------------------

  /**
   * Voids every token, refresh token, session and cached credential of a user, robot or
   * personal access token issued until now (disable, delete, password change, role change).
   */
  async revoke(kind: 'user' | 'robot' | 'pat', id: string): Promise<void> {
    await this.revocations.revoke(`${kind}:${id}`);
    if (kind === 'user' || kind === 'robot') await this.store.refreshTokens.deleteForSubject(kind, id);
    if (kind === 'user') await this.store.sessions.deleteForUser(id);
  }

  /** Drops cached authorization facts (after a change of projects or members in this process). */
  policyChanged(): void {
    this.policy.invalidate();
  }

  /** Periodic clean-up (one process a node): expired refresh tokens, sessions, counters, keys. */
  async purge(): Promise<void> {
    await this.store.refreshTokens.purgeExpired();
    await this.store.sessions.purgeExpired();
    await this.throttle.purge();
    await this.revocations.purge();
    await this.keyring.purge();
  }

  private forgetCachedPrincipals(): void {
    this.basicCache.clear();
    this.basicGeneration++;
    this.principals.clear();
    this.policy.invalidate();
  }

  private async loadPrincipal(kind: 'user' | 'robot', id: string, personalTokenId: string | null): Promise<Principal | null> {
    if (kind === 'robot') {
      const robot = await this.store.robots.getById(id);
      if (!robot || robot.disabled || (robot.expiresAt && robot.expiresAt.getTime() <= this.now())) return null;
      return robotPrincipal(robot);
    }
    const user = await this.store.users.getById(id);
    if (!user || user.disabled) return null;
    if (personalTokenId === null) return userPrincipal(user);
    const token = await this.store.personalTokens.getById(personalTokenId);
    if (!token || token.revokedAt || (token.expiresAt && token.expiresAt.getTime() <= this.now())) return null;
    return userPrincipal(user, { id: token.id, ...parseTokenScopes(token.scopes) });
  }
}
