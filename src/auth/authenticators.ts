import type { ControlStore, UserRecord } from '../metadata/control-store.js';
import { parsePermission, type Permission } from './access.js';
import type { Principal, RobotPrincipal, UserPrincipal } from './principal.js';
import { safeEqual, secretHash, secretPrefix, verifyPassword } from './secrets.js';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * A failed authentication. The message shown to clients never says why (unknown user, wrong
 * password, disabled, expired): that would tell an attacker which user names exist. `reason`
 * is for the server log and the audit log.
 */
export class AuthenticationError extends Error {
  constructor(readonly reason: string) {
    super('invalid username or password');
    this.name = 'AuthenticationError';
  }
}

/**
 * One way of checking a user name and password. Resolves to the principal; rejects with
 * AuthenticationError when the credentials are its kind but wrong; resolves to null when they
 * are not its kind (the next authenticator tries). An external identity provider (LDAP, or the
 * password grant of an OIDC provider) is one more implementation that maps its identity to a
 * Stowage user: the authorizer never learns where a principal came from.
 */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<Principal | null>;
}

/** Robot accounts: the name `robot$…` and the secret shown once at creation. */
export class RobotAuthenticator implements Authenticator {
  constructor(
    private readonly store: ControlStore,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate({ username, password }: Credentials): Promise<Principal | null> {
    if (!username.startsWith('robot$')) return null;
    const found = await this.store.robots.getWithSecret(username);
    // Compare even when the robot does not exist, so that timing tells nothing.
    const matches = safeEqual(found?.secretHash ?? 'x'.repeat(64), secretHash(password));
    if (!found || !matches) throw new AuthenticationError(found ? 'wrong robot secret' : 'unknown robot');
    const { robot } = found;
    if (robot.disabled) throw new AuthenticationError('robot disabled');
    if (robot.expiresAt && robot.expiresAt.getTime() <= this.now()) throw new AuthenticationError('robot expired');
    await this.store.robots.touch(robot.id);
    return robotPrincipal(robot);
  }
}

export function robotPrincipal(robot: { id: string; name: string; project: string | null; permissions: string[] }): RobotPrincipal {
  return { kind: 'robot', id: robot.id, name: robot.name, project: robot.project, permissions: robot.permissions.map(parsePermission) };
}

/** Personal access tokens, used as the password of their user (e.g. in `docker login`). */
export class PersonalTokenAuthenticator implements Authenticator {
  constructor(
    private readonly store: ControlStore,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate({ username, password }: Credentials): Promise<Principal | null> {
    if (!password.startsWith(secretPrefix.personalToken)) return null;
    const token = await this.store.personalTokens.findByHash(secretHash(password));
    if (!token || token.userName !== username) throw new AuthenticationError(token ? 'token of another user' : 'unknown personal access token');
    if (token.revokedAt) throw new AuthenticationError('personal access token revoked');
    if (token.expiresAt && token.expiresAt.getTime() <= this.now()) throw new AuthenticationError('personal access token expired');
    const user = await this.store.users.getById(token.userId);
    if (!user || user.disabled) throw new AuthenticationError('user disabled');
    await this.store.personalTokens.touch(token.id);
    return userPrincipal(user, { id: token.id, ...parseTokenScopes(token.scopes) });
  }
}

/** Local users with an argon2id password hash. */
export class LocalPasswordAuthenticator implements Authenticator {
  constructor(private readonly store: ControlStore) {}

  async authenticate({ username, password }: Credentials): Promise<Principal | null> {
    const found = username.length <= 200 ? await this.store.users.getWithPassword(username) : null;
    const local = found?.user.provider === 'local' ? found : null;
    // Verified even for an unknown user (against a dummy hash), so that timing tells nothing.
    const valid = await verifyPassword(local?.passwordHash ?? null, password);
    if (!local || !valid) throw new AuthenticationError(local ? 'wrong password' : 'unknown user');
    if (local.user.disabled) throw new AuthenticationError('user disabled');
    await this.store.users.touchLogin(local.user.id);
    return userPrincipal(local.user);
  }
}

export function userPrincipal(user: UserRecord, personalToken?: UserPrincipal['personalToken']): UserPrincipal {
  return { kind: 'user', id: user.id, name: user.name, admin: user.admin, ...(personalToken ? { personalToken } : {}) };
}

/** The scopes of a personal access token: repository permissions, and `api` for the management API. */
export function parseTokenScopes(scopes: readonly string[]): { permissions: Permission[]; api: boolean } {
  return {
    api: scopes.includes('api'),
    permissions: scopes.filter((s) => s !== 'api').map(parsePermission),
  };
}

/** Tries each authenticator in turn; the first that recognises the credentials decides. */
export class AuthenticatorChain implements Authenticator {
  constructor(private readonly authenticators: readonly Authenticator[]) {}

  async authenticate(credentials: Credentials): Promise<Principal> {
    if (credentials.username === '' || credentials.password === '') throw new AuthenticationError('empty user name or password');
    for (const authenticator of this.authenticators) {
      const principal = await authenticator.authenticate(credentials);
      if (principal) return principal;
    }
    throw new AuthenticationError('no authenticator accepts these credentials');
  }
}
