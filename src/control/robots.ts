import type { AuditLog } from './audit.js';
import { parsePermission, patternProject } from '../auth/access.js';
import type { AuthService } from '../auth/service.js';
import type { Actor } from '../auth/principal.js';
import { newSecret, secretHash, secretPrefix } from '../auth/secrets.js';
import type { ControlStore, OffsetPage, Paged, RobotRecord } from '../metadata/control-store.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess, systemAccess } from './guard.js';
import { newRobotInput, parse, projectName } from './validation.js';

/**
 * Robot accounts: machine credentials of a project (`robot$<project>+<name>`, created by the
 * project's owners, with permissions inside the project only) or of the system (`robot$<name>`,
 * created by admins). Each has an explicit list of repository permissions, an optional expiry,
 * and a secret shown once.
 */
export class RobotService {
  constructor(
    private readonly store: ControlStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  async create(actor: Actor, input: unknown): Promise<{ robot: RobotRecord; secret: string }> {
    const data = parse(newRobotInput, input);
    const project = data.project ?? null;
    await this.requireManager(actor, project);
    if (project !== null) {
      data.permissions.forEach((text, i) => {
        const confinedTo = patternProject(parsePermission(text).pattern);
        if (confinedTo !== project) {
          throw new ControlError('invalid', `a robot of project ${project} may only have permissions on ${project}/… repositories`, [
            { field: `permissions.${i}`, message: `must start with ${project}/ or be ${project}` },
          ]);
        }
      });
    }
    const name = project === null ? `robot$${data.name}` : `robot$${project}+${data.name}`;
    const secret = newSecret(secretPrefix.robot);
    const robot = await this.store.robots.create({
      name,
      project,
      secretHash: secretHash(secret),
      permissions: data.permissions,
      description: data.description ?? null,
      expiresAt: data.expiresIn === undefined ? null : new Date(this.now() + data.expiresIn),
      createdBy: actor.principal.kind === 'anonymous' ? null : actor.principal.name,
    });
    if (!robot) {
      if (project !== null && !(await this.store.projects.get(project))) throw notFound(`project ${project}`);
      throw new ControlError('conflict', `robot ${name} already exists`, [{ field: 'name', message: 'already taken' }]);
    }
    this.audit.record(actor, {
      action: 'robot.create',
      result: 'success',
      target: robot.name,
      project,
      detail: { permissions: robot.permissions, expiresAt: robot.expiresAt?.toISOString() ?? null },
    });
    return { robot, secret };
  }

  /** Robots of a project (its owners), or system robots / all robots (admins). */
  async list(actor: Actor, filter: { project?: string | null }, page: OffsetPage): Promise<Paged<RobotRecord>> {
    if (typeof filter.project === 'string') parse(projectName, filter.project);
    await this.requireManager(actor, filter.project ?? null);
    return this.store.robots.list(filter, page);
  }

  async delete(actor: Actor, id: string): Promise<void> {
    const robot = /^\d{1,18}$/.test(id) ? await this.store.robots.getById(id) : null;
    if (!robot) throw notFound(`robot ${id}`);
    await this.requireManager(actor, robot.project);
    await this.store.robots.delete(robot.id);
    await this.auth.revoke('robot', robot.id);
    this.audit.record(actor, { action: 'robot.delete', result: 'success', target: robot.name, project: robot.project });
  }

  private requireManager(actor: Actor, project: string | null): Promise<void> {
    return project === null
      ? requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators manage system robots')
      : requireAccess(this.auth.authorizer, actor, { type: 'project', name: project, actions: ['admin'] }, `only owners of project ${project} and system administrators manage its robots`);
  }
}
