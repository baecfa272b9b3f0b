import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Access } from './access.js';
import type { SigningKeyring } from './keys.js';
import type { Principal } from './principal.js';
import type { RevocationList } from './revocations.js';

/** What a verified bearer token says. */
export interface TokenClaims {
  /** The principal's name ('' when anonymous). */
  subject: string;
  kind: Principal['kind'];
  /** User or robot id. */
  principalId: string | null;
  /** The personal access token the user authenticated with, if any. */
  personalTokenId: string | null;
  access: Access[];
  issuedAtMs: number;
  expiresAtMs: number;
  jti: string;
}

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
    this.name = 'InvalidTokenError';
  }
}

export interface TokenServiceOptions {
  issuer: string;
  /** The audience (`service`) tokens are for. */
  service: string;
  ttlMs: number;
  now?: () => number;
  /** Verified tokens kept in memory. Default 10,000. */
  cacheSize?: number;
}

/** Allowance for clocks of nodes that differ a little. */
const CLOCK_TOLERANCE_S = 30;

/**
 * Issues and verifies the JWT bearer tokens of the Docker token specification (ES256, `access`
 * claim). Verification checks the algorithm (ES256 only: `none` and HMAC confusions fail), the
 * key id against the keyring, issuer, audience, expiry and not-before, the claim shapes, and the
 * revocation list. A token that verified is remembered (by its exact string) until it expires,
 * so the signature is checked once per token, not once per request; expiry and revocation are
 * re-checked on every use.
 */
export class TokenService {
  private readonly verified = new Map<string, TokenClaims>();
  private readonly now: () => number;
  private readonly cacheSize: number;

  constructor(
    private readonly keyring: SigningKeyring,
    private readonly revocations: RevocationList,
    private readonly options: TokenServiceOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  get ttlMs(): number {
    return this.options.ttlMs;
  }

  async issue(principal: Principal, access: Access[]): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    const { kid, key } = await this.keyring.signingKey();
    const nowMs = this.now();
    const iat = Math.floor(nowMs / 1000);
    const expiresIn = Math.floor(this.options.ttlMs / 1000);
    const claims: JWTPayload = {
      access: access.filter((a) => a.actions.length > 0),
      kind: principal.kind,
      iat_ms: nowMs,
      ...(principal.kind !== 'anonymous' ? { uid: principal.id } : {}),
      ...(principal.kind === 'user' && principal.personalToken ? { pat: principal.personalToken.id } : {}),
    };
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(this.options.issuer)
      .setSubject(principal.name)
      .setAudience(this.options.service)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + expiresIn)
      .setJti(randomUUID())
      .sign(key);
    return { token, issuedAt: new Date(iat * 1000), expiresIn };
  }

  /** The claims of a valid token; throws InvalidTokenError otherwise. */
  async verify(token: string): Promise<TokenClaims> {
    const cached = this.verified.get(token);
    if (cached) return this.stillValid(cached);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        async (header) => {
          const key = header.kid === undefined ? undefined : await this.keyring.verificationKey(header.kid);
          if (!key) throw new InvalidTokenError('signed by an unknown or expired key');
          return key;
        },
        {
          algorithms: ['ES256'],
          issuer: this.options.issuer,
          audience: this.options.service,
          clockTolerance: CLOCK_TOLERANCE_S,
          requiredClaims: ['exp', 'iat', 'sub'],
          currentDate: new Date(this.now()),
        },
      ));
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new InvalidTokenError('expired');
      if (error instanceof joseErrors.JOSEError) throw new InvalidTokenError(error.code.replace(/^ERR_/, '').toLowerCase().replace(/_/g, ' '));
      throw error;
    }
    const claims = toClaims(payload);
    if (this.verified.size >= this.cacheSize) {
      const oldest = this.verified.keys().next();
      if (!oldest.done) this.verified.delete(oldest.value);
    }
    this.verified.set(token, claims);
    return this.stillValid(claims);
  }

  private stillValid(claims: TokenClaims): TokenClaims {
    if (claims.expiresAtMs + CLOCK_TOLERANCE_S * 1000 <= this.now()) throw new InvalidTokenError('expired');
    const subjects = claimSubjects(claims);
    if (subjects.length > 0 && this.revocations.revoked(subjects, claims.issuedAtMs)) throw new InvalidTokenError('revoked');
    return claims;
  }
}

function claimSubjects(claims: TokenClaims): string[] {
  if (claims.principalId === null) return [];
  if (claims.kind === 'robot') return [`robot:${claims.principalId}`];
  return claims.personalTokenId ? [`user:${claims.principalId}`, `pat:${claims.personalTokenId}`] : [`user:${claims.principalId}`];
}

function toClaims(payload: JWTPayload): TokenClaims {
  const kind = payload.kind;
  if (kind !== 'user' && kind !== 'robot' && kind !== 'anonymous') throw new InvalidTokenError('unknown principal kind');
  const access = payload.access;
  if (!Array.isArray(access) || !access.every(isAccess)) throw new InvalidTokenError('malformed access claim');
  const uid = payload.uid;
  const pat = payload.pat;
  if ((kind === 'anonymous') !== (uid === undefined) || (uid !== undefined && typeof uid !== 'string')) throw new InvalidTokenError('malformed principal');
  if (pat !== undefined && (typeof pat !== 'string' || kind !== 'user')) throw new InvalidTokenError('malformed personal token claim');
  const issuedAtMs = typeof payload.iat_ms === 'number' ? payload.iat_ms : payload.iat! * 1000;
  return {
    subject: payload.sub ?? '',
    kind,
    principalId: uid ?? null,
    personalTokenId: pat ?? null,
    access,
    issuedAtMs,
    expiresAtMs: payload.exp! * 1000,
    jti: payload.jti ?? '',
  };
}

function isAccess(value: unknown): value is Access {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return typeof entry.type === 'string' && typeof entry.name === 'string' && Array.isArray(entry.actions) && entry.actions.every((a) => typeof a === 'string');
}
