import { sql } from 'kysely';
import type { CatalogQueries, OffsetPage, Paged, RepositorySummary, TagSummary } from '../../control-store.js';
import { containsPattern, date, repositoryHasContent, underPrefix, type Db } from './common.js';
import type { WriteContext } from '../../events-store.js';
import { writeRepositoryRemovalEvents } from '../events.js';

/** Up to this many projects are matched in SQL; more are filtered while reading. */
const MAX_PROJECTS_IN_SQL = 50;
const SCAN_CHUNK = 1000;

export class SqlCatalog implements CatalogQueries {
  constructor(
    private readonly db: Db,
    /** Waits out the hot lookups' caches after a deletion (see readCaching). */
    private readonly settle: () => Promise<void>,
  ) {}

  async names(filter: { query?: string; projects?: string[] }, after: string | undefined, limit: number): Promise<string[]> {
    if (limit <= 0 || (filter.projects && filter.projects.length === 0)) return [];
    const projects = filter.projects;
    if (projects === undefined || projects.length <= MAX_PROJECTS_IN_SQL) return this.page(filter.query, projects, after, limit);
    const allowed = new Set(projects);
    const found: string[] = [];
    let last = after;
    for (;;) {
      const chunk = await this.page(filter.query, undefined, last, SCAN_CHUNK);
      for (const name of chunk) {
        if (allowed.has(name.split('/', 1)[0]!)) found.push(name);
        if (found.length === limit) return found;
      }
      if (chunk.length < SCAN_CHUNK) return found;
      last = chunk[chunk.length - 1];
    }
  }

  private async page(text: string | undefined, projects: string[] | undefined, after: string | undefined, limit: number): Promise<string[]> {
    let query = this.db
      .selectFrom('repositories as r')
      .select('r.name')
      .where(repositoryHasContent);
    if (text) query = query.where(sql<boolean>`r.name like ${containsPattern(text)} escape '\\'`);
    if (after !== undefined) query = query.where('r.name', '>', after);
    if (projects !== undefined) {
      query = query.where((eb) =>
        eb.or(
          projects.flatMap((project) => {
            const range = underPrefix(project);
            return [eb('r.name', '=', project), eb.and([eb('r.name', '>=', range.from), eb('r.name', '<', range.to)])];
          }),
        ),
      );
    }
    const rows = await query.orderBy('r.name').limit(limit).execute();
    return rows.map((row) => row.name);
  }

  async summaries(names: string[]): Promise<RepositorySummary[]> {
    if (names.length === 0) return [];
    const rows = await this.db
      .selectFrom('repositories as r')
      .select((eb) => [
        'r.name',
        eb.selectFrom('tags as t').select((sub) => sub.fn.countAll().as('n')).whereRef('t.repository_id', '=', 'r.id').as('tags'),
        eb.selectFrom('manifests as m').select((sub) => sub.fn.countAll().as('n')).whereRef('m.repository_id', '=', 'r.id').as('manifests'),
        eb.selectFrom('manifests as m').select((sub) => sub.fn.max('m.created_at').as('at')).whereRef('m.repository_id', '=', 'r.id').as('manifestAt'),
        eb.selectFrom('tags as t').select((sub) => sub.fn.max('t.updated_at').as('at')).whereRef('t.repository_id', '=', 'r.id').as('tagAt'),
      ])
      .where('r.name', 'in', names)
      .orderBy('r.name')
      .execute();
    return rows.map((row) => {
      const times = [row.manifestAt, row.tagAt].filter((v) => v !== null && v !== undefined).map(Number);
      return {
        name: row.name,
        tags: Number(row.tags ?? 0),
        manifests: Number(row.manifests ?? 0),
        updatedAt: times.length > 0 ? new Date(Math.max(...times)) : null,
      };
    });
  }

  async tags(repository: string, page: OffsetPage): Promise<Paged<TagSummary>> {
    const base = this.db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .innerJoin('manifests as m', 'm.id', 't.manifest_id')
      .where('r.name', '=', repository);
    const [rows, count] = await Promise.all([
      base
        .select((eb) => [
          't.name',
          'm.digest',
          'm.media_type',
          'm.size',
          't.updated_at',
          eb
            .selectFrom('manifest_blobs as mb')
            .innerJoin('blobs as b', 'b.digest', 'mb.digest')
            .select((sub) => sub.fn.sum('b.size').as('n'))
            .whereRef('mb.manifest_id', '=', 'm.id')
            .as('blobSize'),
        ])
        .orderBy('t.name')
        .limit(page.limit)
        .offset(page.offset)
        .execute(),
      base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(),
    ]);
    return {
      total: Number(count.n),
      items: rows.map((row) => ({
        name: row.name,
        digest: row.digest,
        mediaType: row.media_type,
        size: Number(row.size) + Number(row.blobSize ?? 0),
        pushedAt: date(row.updated_at),
      })),
    };
  }

  async deleteRepository(name: string, context?: WriteContext): Promise<boolean> {
    const deleted = await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('uploads').where('repository', '=', name).execute();
      await writeRepositoryRemovalEvents(trx, [name], context, Date.now());
      // Manifests, tags, their history and blob links go with it (ON DELETE CASCADE).
      const result = await trx.deleteFrom('repositories').where('name', '=', name).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
    if (deleted) await this.settle();
    return deleted;
  }
}
