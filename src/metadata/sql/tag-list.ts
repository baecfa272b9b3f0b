import { sql, type Kysely } from 'kysely';
import type { PageRequest } from '../metadata-store.js';
import type { ListLeases } from './list-leases.js';
import { precompile } from './precompiled.js';
import type { Database, Id } from './schema.js';

type Db = Kysely<Database>;

export interface TagListCacheLimits {
  /** Repositories whose names are kept (least recently listed dropped first). */
  repositories: number;
  /** A repository with more tags than this is always paged in the database. */
  namesPerRepository: number;
  /** Tag names kept over all repositories. */
  names: number;
}

const defaultLimits: TagListCacheLimits = { repositories: 256, namesPerRepository: 100_000, names: 500_000 };

interface CachedNames {
  repositoryId: Id;
  /** Repository id and tags_version the names were read at. */
  version: string;
  /** Null: more than `namesPerRepository`, paged in the database while the version holds. */
  names: string[] | null;
  /** With leases: until when (the leases' clock) the copy may answer without a version check. */
  leasedUntil: number;
}

/**
 * Tag listings from a per-process copy of each repository's tag names, checked against the
 * repository's `tags_version` (one indexed read) on every listing. The version is read before
 * the names, so a copy can only ever be labelled with an older version than its content — then
 * the next listing reads again — never with a newer one: a listing never misses a change that
 * committed before it started, on this process or on any other node. Tag moves (the common
 * write: `latest` pushed again) leave the names and the version alone.
 *
 * Why: a full listing of a repository with thousands of tags otherwise reads and sorts every name
 * each time (about 2 ms of database time for 5,000 tags), while CI tooling lists the same
 * repositories over and over.
 *
 * With `leases` (PostgreSQL, where the version check is a round trip), a copy also answers with
 * no check at all while the listing lease taken before its last check lasts (list-leases.ts).
 */
export class TagLister {
  private readonly cache = new Map<string, CachedNames>();
  private cachedNames = 0;
  private readonly versionOf: (repository: string) => Promise<{ id: Id; tags_version: unknown } | undefined>;

  constructor(
    private readonly db: Db,
    private readonly limits: TagListCacheLimits = defaultLimits,
    private readonly leases?: ListLeases,
  ) {
    this.versionOf = precompile(db, (d) =>
      d.selectFrom('repositories').select(['id', 'tags_version']).where('name', '=', '' as string),
    );
  }

  async list(repository: string, page: PageRequest): Promise<string[]> {
    if (page.limit <= 0) return [];
    const cached = this.cache.get(repository);
    if (cached && this.leases && this.leases.clock() < cached.leasedUntil) return this.answer(repository, cached, page);
    // The lease first, then the version: see list-leases.ts.
    const leasedUntil = this.leases ? await this.leases.takeForRepository(repository) : -Infinity;
    if (leasedUntil === null) return [];
    const repo = await this.versionOf(repository);
    if (!repo) return [];
    const version = `${repo.id}:${String(repo.tags_version)}`;
    if (cached?.version === version) {
      cached.leasedUntil = leasedUntil;
      return this.answer(repository, cached, page);
    }
    const names = await this.names(repo.id, undefined, this.limits.namesPerRepository + 1);
    this.forget(repository);
    const entry = { repositoryId: repo.id, version, names: names.length > this.limits.namesPerRepository ? null : names, leasedUntil };
    this.remember(repository, entry);
    return this.answer(repository, entry, page);
  }

  private answer(repository: string, entry: CachedNames, page: PageRequest): string[] | Promise<string[]> {
    // Most recently used last, so eviction drops the least recently listed.
    this.cache.delete(repository);
    this.cache.set(repository, entry);
    return entry.names ? slicePage(entry.names, page) : this.names(entry.repositoryId, page.last, page.limit);
  }

  /** Names of a repository in byte order after `last`, at most `limit`, in one row. */
  private async names(repositoryId: Id, last: string | undefined, limit: number): Promise<string[]> {
    let query = this.db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId);
    if (last !== undefined) query = query.where('name', '>', last);
    // One row with all the names, not one row per tag: materialising a row object per tag costs
    // more than the query itself. Tag names cannot contain a newline. string_agg with ORDER BY
    // exists in PostgreSQL and SQLite ≥ 3.44.
    const ordered = query.orderBy('name').limit(limit).as('page');
    const row = await this.db
      .selectFrom(ordered)
      .select(sql<string | null>`string_agg(${sql.ref('page.name')}, ${'\n'} order by ${sql.ref('page.name')})`.as('names'))
      .executeTakeFirst();
    return row?.names ? row.names.split('\n') : [];
  }

  private remember(repository: string, entry: CachedNames): void {
    this.cache.set(repository, entry);
    this.cachedNames += entry.names?.length ?? 0;
    for (const [name, old] of this.cache) {
      if (this.cache.size <= this.limits.repositories && this.cachedNames <= this.limits.names) break;
      if (name === repository) continue;
      this.cache.delete(name);
      this.cachedNames -= old.names?.length ?? 0;
    }
  }

  private forget(repository: string): void {
    const old = this.cache.get(repository);
    if (!old) return;
    this.cache.delete(repository);
    this.cachedNames -= old.names?.length ?? 0;
  }
}

/** The page of sorted `names` strictly after `page.last`. Tag names are ASCII: JS order is byte order. */
export function slicePage(names: string[], page: PageRequest): string[] {
  const start = page.last === undefined ? 0 : firstAfter(names, page.last);
  return names.slice(start, start + page.limit);
}

function firstAfter(names: string[], last: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (names[mid]! <= last) low = mid + 1;
    else high = mid;
  }
  return low;
}
