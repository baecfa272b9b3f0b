import { permittedActions, repositoryActions, type Access, type RepositoryAction } from './access.js';
import type { Principal } from './principal.js';

export type Role = 'owner' | 'maintainer' | 'developer' | 'reader';
export const roles: readonly Role[] = ['owner', 'maintainer', 'developer', 'reader'];

/** What each role may do on the repositories of its project. */
const roleActions: Record<Role, readonly RepositoryAction[]> = {
  owner: ['pull', 'push', 'delete'],
  maintainer: ['pull', 'push', 'delete'],
  developer: ['pull', 'push'],
  reader: ['pull'],
};

/** The facts the authorizer decides on; implementations may cache them briefly. */
export interface PolicySource {
  project(name: string): Promise<{ id: string; public: boolean } | null>;
  role(projectId: string, userId: string): Promise<Role | null>;
}

export interface AuthorizerOptions {
  /** Who may create projects (explicitly, or by pushing to a project that does not exist). */
  projectCreation: 'admins' | 'users';
}

/** The project of a repository: its first path component (`team/app` → `team`). */
export function projectOf(repository: string): string {
  const slash = repository.indexOf('/');
  return slash === -1 ? repository : repository.slice(0, slash);
}

/**
 * The one authorizer: given a principal and an access request, the subset of the requested
 * actions that the principal is granted (never an error: the token spec asks for the
 * intersection). Resource types:
 *
 * - `repository:<name>`: pull, push, delete (`*` for all), by project role, project visibility,
 *   robot and personal-token permissions; system admins may do everything.
 * - `registry:catalog`: `*` for everyone (the listing is then filtered by pull permission).
 * - `project:<name>`: `read` (public, member or admin), `member` (member or admin: see the
 *   members), `admin` (owner or admin: members, visibility, robots, deletion), `create` (by the
 *   project-creation setting).
 * - `system:<anything>`: `*` for system admins only (users, audit log, keys).
 *
 * The authorizer knows nothing of how the principal authenticated: an external identity
 * provider plugs in below it, as another authenticator producing a principal.
 */
export class Authorizer {
  constructor(
    private readonly source: PolicySource,
    private readonly options: AuthorizerOptions,
  ) {}

  async authorize(principal: Principal, access: Access): Promise<string[]> {
    switch (access.type) {
      case 'repository':
        return this.repository(principal, access);
      case 'registry':
        return access.name === 'catalog' ? access.actions.filter((a) => a === '*') : [];
      case 'project':
        return this.project(principal, access);
      case 'system':
        return isAdmin(principal) ? access.actions : [];
      default:
        return [];
    }
  }

  /** Whether every requested action is granted. */
  async allows(principal: Principal, access: Access): Promise<boolean> {
    const granted = await this.authorize(principal, access);
    return access.actions.every((a) => granted.includes(a));
  }

  /** Whether the principal may create projects. */
  canCreateProjects(principal: Principal): boolean {
    return principal.kind === 'user' && (principal.admin || this.options.projectCreation === 'users');
  }

  private async repository(principal: Principal, access: Access): Promise<string[]> {
    const wanted = new Set(access.actions.flatMap((a) => (a === '*' ? [...repositoryActions] : [a])));
    const allowed = await this.repositoryActions(principal, access.name);
    return [...repositoryActions].filter((a) => wanted.has(a) && allowed.has(a));
  }

  private async repositoryActions(principal: Principal, repository: string): Promise<Set<RepositoryAction>> {
    const project = await this.source.project(projectOf(repository));
    let actions: Set<RepositoryAction>;
    if (principal.kind === 'anonymous') {
      actions = new Set();
    } else if (principal.kind === 'robot') {
      // Robots act only on existing projects: they never create one by pushing.
      actions = project ? permittedActions(principal.permissions, repository) : new Set();
    } else {
      if (principal.admin) {
        actions = new Set(repositoryActions);
      } else if (!project) {
        // Pushing creates the project (and makes the pusher its owner) when allowed.
        actions = new Set(this.canCreateProjects(principal) ? repositoryActions : []);
      } else {
        const role = await this.source.role(project.id, principal.id);
        actions = new Set(role ? roleActions[role] : []);
      }
      if (principal.personalToken) {
        const limit = permittedActions(principal.personalToken.permissions, repository);
        actions = new Set([...actions].filter((a) => limit.has(a)));
      }
    }
    // Anyone may pull from a public project: a credential never gives less than none at all.
    if (project?.public) actions.add('pull');
    return actions;
  }

  private async project(principal: Principal, access: Access): Promise<string[]> {
    if (principal.kind === 'user' && principal.personalToken && !principal.personalToken.api) return [];
    const granted: string[] = [];
    const project = access.actions.some((a) => a !== 'create') ? await this.source.project(access.name) : null;
    // Administrators need no membership (and the system actor of the CLI and of open access has no
    // user id to look up: PostgreSQL would refuse '' as a bigint).
    const role = project && principal.kind === 'user' && !isAdmin(principal) ? await this.source.role(project.id, principal.id) : null;
    for (const action of access.actions) {
      if (action === 'create' && this.canCreateProjects(principal)) granted.push(action);
      if (!project) continue;
      if (action === 'read' && (isAdmin(principal) || project.public || role !== null)) granted.push(action);
      if (action === 'member' && (isAdmin(principal) || role !== null)) granted.push(action);
      if (action === 'admin' && (isAdmin(principal) || role === 'owner')) granted.push(action);
    }
    return granted;
  }
}

function isAdmin(principal: Principal): boolean {
  return principal.kind === 'user' && principal.admin && (!principal.personalToken || principal.personalToken.api);
}
