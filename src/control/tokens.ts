import type { AuditLog } from './audit.js';
import type { AuthService } from '../auth/service.js';
import type { Actor } from '../auth/principal.js';
import { newSecret, secretHash, secretPrefix } from '../auth/secrets.js';
import type { ControlStore, PersonalTokenRecord } from '../metadata/control-store.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess, requireApiScope, requireInteractiveUser, systemAccess } from './guard.js';
import { newTokenInput, parse, userName } from './validation.js';

/**
 * Personal access tokens: a user's scoped, expiring, revocable credentials, usable as the
 * password in `docker login`. Stored as a SHA-256 hash; the token itself is shown once.
 */
export class PersonalTokenService {
  constructor(
    private readonly store: ControlStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  async create(actor: Actor, input: unknown): Promise<{ token: PersonalTokenRecord; secret: string }> {
    const data = parse(newTokenInput, input);
    // A token never makes tokens: a limited one could otherwise make an unlimited one.
    requireInteractiveUser(actor, 'creating a personal access token');
    const owner = await this.owner(actor, data.user);
    const secret = newSecret(secretPrefix.personalToken);
    const token = await this.store.personalTokens.create({
      userId: owner.id,
      name: data.name,
      tokenHash: secretHash(secret),
      scopes: data.scopes,
      expiresAt: new Date(this.now() + data.expiresIn),
    });
    this.audit.record(actor, {
      action: 'token.create',
      result: 'success',
      target: owner.name,
      project: null,
      detail: { id: token.id, name: token.name, scopes: token.scopes, expiresAt: token.expiresAt?.toISOString() },
    });
    return { token, secret };
  }

  async list(actor: Actor, user?: string): Promise<PersonalTokenRecord[]> {
    const owner = await this.owner(actor, user);
    return this.store.personalTokens.list(owner.id);
  }

  /** Revokes a token of one's own (admins: anyone's); its bearer tokens stop working too. */
  async revoke(actor: Actor, id: string): Promise<void> {
    requireInteractiveUser(actor, 'revoking a token');
    const token = /^\d{1,18}$/.test(id) ? await this.store.personalTokens.getById(id) : null;
    if (!token) throw notFound(`token ${id}`);
    if (token.userId !== actor.principal.id) {
      // Someone else's token: admins only; to others it does not exist.
      if (!(await this.auth.authorizer.allows(actor.principal, systemAccess))) throw notFound(`token ${id}`);
    }
    if (!(await this.store.personalTokens.revoke(token.id))) throw new ControlError('conflict', `token ${id} is already revoked`);
    await this.auth.revoke('pat', token.id);
    this.audit.record(actor, { action: 'token.revoke', result: 'success', target: token.userName, project: null, detail: { id: token.id, name: token.name } });
  }

  /** Whose tokens: one's own, or (admins) another user's. */
  private async owner(actor: Actor, user: string | undefined): Promise<{ id: string; name: string }> {
    const principal = actor.principal;
    if (principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
    if (principal.kind !== 'user') throw new ControlError('forbidden', 'robots have no personal access tokens');
    requireApiScope(actor);
    if (user === undefined || user === principal.name) {
      if (principal.id === '') throw new ControlError('invalid', 'name the user whose tokens these are', [{ field: 'user', message: 'required here' }]);
      return { id: principal.id, name: principal.name };
    }
    parse(userName, user);
    await requireAccess(this.auth.authorizer, actor, systemAccess, "only system administrators manage other users' tokens");
    const found = await this.store.users.get(user);
    if (!found) throw notFound(`user ${user}`);
    return found;
  }
}
