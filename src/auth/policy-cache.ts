import type { ControlStore } from '../metadata/control-store.js';
import type { PolicySource, Role } from './authorizer.js';

interface Entry<T> {
  value: T;
  until: number;
}

/**
 * The authorizer's facts (project visibility, membership roles) from the database, cached per
 * process for `ttlMs` (default 5 s) so that authorizing a request costs no query most of the
 * time. Changes made in this process invalidate the cache at once; other processes see them
 * within `ttlMs` (and at once after a revocation, which clears every cache).
 */
export class CachedPolicySource implements PolicySource {
  private readonly projects = new Map<string, Entry<{ id: string; public: boolean } | null>>();
  private readonly roles = new Map<string, Entry<Role | null>>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly store: ControlStore,
    options: { ttlMs?: number; now?: () => number } = {},
  ) {
    this.ttlMs = options.ttlMs ?? 5000;
    this.now = options.now ?? Date.now;
  }

  async project(name: string): Promise<{ id: string; public: boolean } | null> {
    return this.cached(this.projects, name, async () => {
      const project = await this.store.projects.get(name);
      return project ? { id: project.id, public: project.public } : null;
    });
  }

  async role(projectId: string, userId: string): Promise<Role | null> {
    return this.cached(this.roles, `${projectId}/${userId}`, () => this.store.members.role(projectId, userId));
  }

  invalidate(): void {
    this.projects.clear();
    this.roles.clear();
  }

  private async cached<T>(map: Map<string, Entry<T>>, key: string, load: () => Promise<T>): Promise<T> {
    const now = this.now();
    const hit = map.get(key);
    if (hit && hit.until > now) return hit.value;
    const value = await load();
    if (map.size >= 10_000) map.clear();
    map.set(key, { value, until: now + this.ttlMs });
    return value;
  }
}
