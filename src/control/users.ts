import type { AuditLog } from './audit.js';
import type { AuthService } from '../auth/service.js';
import type { Actor } from '../auth/principal.js';
import { generatePassword, hashPassword, verifyPassword } from '../auth/secrets.js';
import type { ControlStore, OffsetPage, Paged, UserRecord } from '../metadata/control-store.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess, requireApiScope, requireInteractiveUser, systemAccess } from './guard.js';
import { newUserInput, parse, passwordChangeInput, userChangesInput } from './validation.js';

/** Users: created, listed, changed and deleted by system admins; each user changes their password. */
export class UserService {
  constructor(
    private readonly store: ControlStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
  ) {}

  /** Creates a user; without a password one is generated and returned (shown once). */
  async create(actor: Actor, input: unknown): Promise<{ user: UserRecord; generatedPassword?: string }> {
    const data = parse(newUserInput, input);
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators create users');
    const generatedPassword = data.password === undefined ? generatePassword() : undefined;
    const user = await this.store.users.create({
      name: data.name,
      passwordHash: await hashPassword(data.password ?? generatedPassword!),
      email: data.email ?? null,
      admin: data.admin ?? false,
    });
    if (!user) throw new ControlError('conflict', `user ${data.name} already exists`, [{ field: 'name', message: 'already taken' }]);
    this.audit.record(actor, { action: 'user.create', result: 'success', target: user.name, project: null, detail: { admin: user.admin } });
    return generatedPassword ? { user, generatedPassword } : { user };
  }

  async list(actor: Actor, filter: { query?: string; disabled?: boolean }, page: OffsetPage): Promise<Paged<UserRecord>> {
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators list users');
    return this.store.users.list(filter, page);
  }

  /** A user: admins see everyone, users themselves. */
  async get(actor: Actor, name: string): Promise<UserRecord> {
    requireApiScope(actor);
    if (!this.isSelf(actor, name)) await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators see other users');
    const user = await this.store.users.get(name);
    if (!user) throw notFound(`user ${name}`);
    return user;
  }

  /** Disables or enables, grants or removes admin rights, changes the e-mail address. */
  async update(actor: Actor, name: string, input: unknown): Promise<UserRecord> {
    const changes = parse(userChangesInput, input);
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators change users');
    if (this.isSelf(actor, name) && (changes.disabled === true || changes.admin === false)) {
      throw new ControlError('forbidden', 'you cannot disable yourself or remove your own admin rights (another admin can)');
    }
    const user = await this.store.users.update(name, changes);
    if (!user) throw notFound(`user ${name}`);
    if (changes.disabled === true || changes.admin === false) await this.auth.revoke('user', user.id);
    this.audit.record(actor, { action: 'user.update', result: 'success', target: name, project: null, detail: changes });
    return user;
  }

  /**
   * Changes a password: users change their own (giving the current one); admins anyone's. Every
   * token, refresh token and session of the user issued before is revoked.
   */
  async setPassword(actor: Actor, name: string, input: unknown): Promise<void> {
    const data = parse(passwordChangeInput, input);
    requireInteractiveUser(actor, 'changing a password');
    const self = this.isSelf(actor, name);
    if (!self) await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators change the password of others');
    const found = await this.store.users.getWithPassword(name);
    if (!found) throw notFound(`user ${name}`);
    if (self) {
      if (data.currentPassword === undefined || !(await verifyPassword(found.passwordHash, data.currentPassword))) {
        this.audit.record(actor, { action: 'user.password', result: 'failure', target: name, project: null, detail: { reason: 'wrong current password' } });
        throw new ControlError('invalid', 'the current password is wrong', [{ field: 'currentPassword', message: 'does not match' }]);
      }
    }
    await this.store.users.update(name, { passwordHash: await hashPassword(data.password) });
    await this.auth.revoke('user', found.user.id);
    this.audit.record(actor, { action: 'user.password', result: 'success', target: name, project: null });
  }

  async delete(actor: Actor, name: string): Promise<void> {
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators delete users');
    if (this.isSelf(actor, name)) throw new ControlError('forbidden', 'you cannot delete yourself (another admin can)');
    const user = await this.store.users.get(name);
    if (!user || !(await this.store.users.delete(name))) throw notFound(`user ${name}`);
    await this.auth.revoke('user', user.id);
    this.auth.policyChanged();
    this.audit.record(actor, { action: 'user.delete', result: 'success', target: name, project: null });
  }

  private isSelf(actor: Actor, name: string): boolean {
    return actor.principal.kind === 'user' && actor.principal.id !== '' && actor.principal.name === name;
  }
}
