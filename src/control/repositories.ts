import type { AuditLog } from './audit.js';
import type { AuthService } from '../auth/service.js';
import type { Actor, Principal } from '../auth/principal.js';
import type { ControlStore, OffsetPage, Paged, RepositorySummary, TagSummary } from '../metadata/control-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { tagGuardFor } from '../registry/immutability.js';
import { isRepositoryName, isTag } from '../registry/names.js';
import { ControlError, notFound } from './errors.js';
import { systemAccess } from './guard.js';
import { nodeName, writeContextOf } from '../events/context.js';

/** The most repository names one listing looks at (for filtering and the total count). */
const MAX_SCAN = 100_000;

/**
 * Repositories and tags for the management API, under the same rules as /v2: listing and
 * reading need pull, deleting needs delete. Repositories the actor cannot pull are "not found".
 */
export class RepositoryService {
  constructor(
    private readonly store: ControlStore,
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    private readonly node: string = nodeName(),
  ) {}

  /** Repositories the actor may pull, by name, optionally within a project and containing `query`. */
  async list(actor: Actor, filter: { query?: string; project?: string }, page: OffsetPage): Promise<Paged<RepositorySummary>> {
    const principal = actor.principal;
    const admin = await this.auth.authorizer.allows(principal, systemAccess);
    const projects = filter.project !== undefined ? [filter.project] : admin ? undefined : await this.visibleProjects(principal);
    const candidates = await this.store.catalog.names({ query: filter.query, projects }, undefined, MAX_SCAN);
    const names: string[] = [];
    for (const name of candidates) if (admin || (await this.canPull(principal, name))) names.push(name);
    const slice = names.slice(page.offset, page.offset + page.limit);
    return { items: await this.store.catalog.summaries(slice), total: names.length };
  }

  async get(actor: Actor, name: string): Promise<RepositorySummary> {
    await this.require(actor, name, 'pull');
    const [summary] = await this.store.catalog.summaries([name]);
    if (!summary) throw notFound(`repository ${name}`);
    return summary;
  }

  async delete(actor: Actor, name: string): Promise<void> {
    await this.require(actor, name, 'delete');
    if (!(await this.store.catalog.deleteRepository(name, writeContextOf(actor, this.node)))) throw notFound(`repository ${name}`);
    this.audit.record(actor, { action: 'repository.delete', result: 'success', target: name });
  }

  async tags(actor: Actor, name: string, page: OffsetPage): Promise<Paged<TagSummary>> {
    await this.require(actor, name, 'pull');
    return this.store.catalog.tags(name, page);
  }

  async deleteTag(actor: Actor, name: string, tag: string): Promise<void> {
    await this.require(actor, name, 'delete');
    if (!isTag(tag)) throw new ControlError('invalid', 'invalid tag', [{ field: 'tag', message: 'not a valid tag' }]);
    const current = await this.metadata.tags.get(name, tag);
    if (!current) throw notFound(`tag ${name}:${tag}`);
    const rule = (await tagGuardFor(this.metadata, name))?.immutable(tag) ?? null;
    if (rule !== null) {
      this.audit.record(actor, { action: 'tag.immutable', result: 'denied', target: `${name}:${tag}`, detail: { rule, digest: current.digest, method: 'DELETE' } });
      throw new ControlError('forbidden', `tag ${tag} is immutable (rule ${rule}); it cannot be deleted`);
    }
    if (!(await this.metadata.tags.delete(name, tag, { context: writeContextOf(actor, this.node) }))) throw notFound(`tag ${name}:${tag}`);
    this.audit.record(actor, { action: 'tag.delete', result: 'success', target: `${name}:${tag}`, detail: { digest: current.digest } });
  }

  /** Throws not-found unless the actor may pull (and do `action` on) the repository. */
  private async require(actor: Actor, name: string, action: 'pull' | 'delete'): Promise<void> {
    if (!isRepositoryName(name)) throw new ControlError('invalid', 'invalid repository name', [{ field: 'name', message: 'not a repository name' }]);
    const granted = await this.auth.authorizer.authorize(actor.principal, { type: 'repository', name, actions: ['pull', action] });
    if (!granted.includes('pull')) {
      if (actor.principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
      throw notFound(`repository ${name}`);
    }
    if (!granted.includes(action)) throw new ControlError('forbidden', `you may not ${action} in repository ${name}`);
  }

  private async canPull(principal: Principal, name: string): Promise<boolean> {
    return this.auth.authorizer.allows(principal, { type: 'repository', name, actions: ['pull'] });
  }

  /**
   * Projects whose repositories the principal might pull (each is then checked): public ones,
   * and the user's own or the robot's; undefined (all) for system robots.
   */
  private async visibleProjects(principal: Principal): Promise<string[] | undefined> {
    if (principal.kind === 'robot' && principal.project === null) return undefined;
    const visible = new Set<string>(principal.kind === 'robot' ? [principal.project!] : []);
    const userId = principal.kind === 'user' ? principal.id : null;
    for (let offset = 0; ; offset += 1000) {
      const page = await this.store.projects.list({ visibleTo: { userId } }, { offset, limit: 1000 });
      page.items.forEach((p) => visible.add(p.name));
      if (page.items.length < 1000) break;
    }
    return [...visible];
  }
}
