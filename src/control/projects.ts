import type { AuditLog } from './audit.js';
import { projectOf, type Role } from '../auth/authorizer.js';
import type { AuthService } from '../auth/service.js';
import type { Actor, Principal } from '../auth/principal.js';
import type { ControlStore, MemberRecord, OffsetPage, Paged, ProjectRecord } from '../metadata/control-store.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess, systemAccess } from './guard.js';
import { memberInput, newProjectInput, parse, projectChangesInput, projectName, userName } from './validation.js';
import type { ControlEvent, EventRecorder } from '../events/recorder.js';
import type { NewEvent } from '../metadata/events-store.js';

/** Projects (namespaces of repositories), their visibility and their members. */
export class ProjectService {
  /** Pushers and repositories checked in this process (for a minute): their next requests need no lookup. */
  private readonly known = new Map<string, number>();

  constructor(
    private readonly store: ControlStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    /** project.* and member.* events, written after each change commits. */
    private readonly events?: EventRecorder,
  ) {}

  /** Creates a project; the creating user becomes its owner (or `owner`, when an admin says so). */
  async create(actor: Actor, input: unknown): Promise<ProjectRecord> {
    const data = parse(newProjectInput, input);
    await requireAccess(this.auth.authorizer, actor, { type: 'project', name: data.name, actions: ['create'] }, 'you may not create projects');
    let ownerId: string | undefined = actor.principal.kind === 'user' && actor.principal.id !== '' ? actor.principal.id : undefined;
    if (data.owner !== undefined) {
      await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators create projects for others');
      const owner = await this.store.users.get(data.owner);
      if (!owner) throw new ControlError('invalid', `user ${data.owner} does not exist`, [{ field: 'owner', message: 'no such user' }]);
      ownerId = owner.id;
    }
    const events = this.describe({ type: 'project.created', actor, project: data.name, detail: { public: data.public } });
    const project = await this.store.projects.create({ name: data.name, public: data.public, createdBy: creator(actor.principal) }, ownerId, events);
    if (!project) throw new ControlError('conflict', `project ${data.name} already exists`, [{ field: 'name', message: 'already taken' }]);
    this.auth.policyChanged();
    this.audit.record(actor, { action: 'project.create', result: 'success', target: project.name, project: project.name, detail: { public: project.public } });
    return project;
  }

  /**
   * Before a push: creates the repository's project when it does not exist and the pusher may
   * create projects (a token granted the push on that condition), with the pusher as owner.
   * When the project exists but someone else created it since the token was issued, the push
   * is checked again against the project's members (the token alone is not enough then).
   * Remembered per pusher and project for a minute, so later requests of a push cost nothing.
   */
  async ensureForPush(actor: Actor, repository: string): Promise<void> {
    const name = projectOf(repository);
    const principal = actor.principal;
    const key = `${principal.kind}:${principal.kind === 'anonymous' ? '' : principal.id}:${repository}`;
    if ((this.known.get(key) ?? 0) > Date.now()) return;
    const ownerId = principal.kind === 'user' && principal.id !== '' ? principal.id : undefined;
    let created = false;
    if (!(await this.store.projects.get(name))) {
      if (!this.auth.authorizer.canCreateProjects(principal)) throw new ControlError('forbidden', `project ${name} does not exist`);
      const events = this.describe({ type: 'project.created', actor, project: name, detail: { public: false, via: 'push' } });
      created = (await this.store.projects.ensure({ name, public: false, createdBy: creator(principal) }, ownerId, events)).created;
      if (created) {
        this.auth.policyChanged();
        this.audit.record(actor, { action: 'project.create', result: 'success', target: name, project: name, detail: { public: false, via: 'push' } });
      }
    }
    if (!created && !(await this.auth.authorizer.allows(principal, { type: 'repository', name: repository, actions: ['push'] }))) {
      throw new ControlError('forbidden', `you may not push to ${repository}`);
    }
    if (this.known.size > 10_000) this.known.clear();
    this.known.set(key, Date.now() + 60_000);
  }

  /** Projects the actor can see: public ones, those they belong to; all for admins. */
  async list(actor: Actor, filter: { query?: string }, page: OffsetPage): Promise<Paged<ProjectRecord>> {
    const principal = actor.principal;
    const all = await this.auth.authorizer.allows(principal, systemAccess);
    const visibleTo = all ? { all: true as const } : { userId: principal.kind === 'user' ? principal.id : null };
    return this.store.projects.list({ query: filter.query, visibleTo }, page);
  }

  /** A project the actor can see (private projects of others are "not found", not "forbidden"). */
  async get(actor: Actor, name: string): Promise<ProjectRecord> {
    parse(projectName, name);
    if (!(await this.auth.authorizer.allows(actor.principal, { type: 'project', name, actions: ['read'] }))) throw notFound(`project ${name}`);
    const project = await this.store.projects.get(name);
    if (!project) throw notFound(`project ${name}`);
    return project;
  }

  async update(actor: Actor, name: string, input: unknown): Promise<ProjectRecord> {
    const changes = parse(projectChangesInput, input);
    await this.get(actor, name);
    await this.requireOwner(actor, name);
    const project = await this.store.projects.update(name, changes, this.describe({ type: 'project.updated', actor, project: name, detail: changes }));
    if (!project) throw notFound(`project ${name}`);
    this.auth.policyChanged();
    this.audit.record(actor, { action: 'project.update', result: 'success', target: name, project: name, detail: changes });
    return project;
  }

  /** Deletes an empty project, or with `force` one with repositories (which go with it). */
  async delete(actor: Actor, name: string, force: boolean): Promise<void> {
    await this.get(actor, name);
    await this.requireOwner(actor, name);
    const events = this.describe({ type: 'project.deleted', actor, project: name, detail: { force } });
    const result = await this.store.projects.delete(name, force, this.events?.contextOf(actor), events);
    if (result === 'not-found') throw notFound(`project ${name}`);
    if (result === 'not-empty') throw new ControlError('conflict', `project ${name} has repositories: delete them first, or delete with force`);
    this.known.clear();
    this.auth.policyChanged();
    this.audit.record(actor, { action: 'project.delete', result: 'success', target: name, project: name, detail: { force } });
  }

  async members(actor: Actor, name: string): Promise<MemberRecord[]> {
    await this.get(actor, name);
    await requireAccess(this.auth.authorizer, actor, { type: 'project', name, actions: ['member'] }, 'only members see the members of a project');
    return this.store.members.list(name);
  }

  /** Adds a member or changes a role (owners and admins); the member's tokens are revoked. */
  async setMember(actor: Actor, name: string, user: string, input: unknown): Promise<void> {
    const { role } = parse(memberInput, input);
    parse(userName, user);
    await this.get(actor, name);
    await this.requireOwner(actor, name);
    const target = await this.store.users.get(user);
    if (!target) throw notFound(`user ${user}`);
    const events = this.describe({ type: 'member.changed', actor, project: name, detail: { user, role } });
    if (!(await this.store.members.set(name, user, role as Role, events))) throw notFound(`project ${name}`);
    await this.auth.revoke('user', target.id);
    this.auth.policyChanged();
    this.audit.record(actor, { action: 'member.set', result: 'success', target: user, project: name, detail: { role } });
  }

  async removeMember(actor: Actor, name: string, user: string): Promise<void> {
    await this.get(actor, name);
    await this.requireOwner(actor, name);
    const target = await this.store.users.get(user);
    const events = this.describe({ type: 'member.removed', actor, project: name, detail: { user } });
    if (!target || !(await this.store.members.remove(name, user, events))) throw notFound(`member ${user} of project ${name}`);
    await this.auth.revoke('user', target.id);
    this.auth.policyChanged();
    this.audit.record(actor, { action: 'member.remove', result: 'success', target: user, project: name });
  }

  /** The events of a change, written by the store in the change's own transaction (none without events). */
  private describe(event: ControlEvent): NewEvent[] {
    return this.events ? [this.events.prepare(event)] : [];
  }

  private requireOwner(actor: Actor, name: string): Promise<void> {
    return requireAccess(this.auth.authorizer, actor, { type: 'project', name, actions: ['admin'] }, `only owners of project ${name} and system administrators may do this`);
  }
}

function creator(principal: Principal): string | null {
  return principal.kind === 'anonymous' ? null : principal.name;
}
