import type { RetentionManifest, RetentionQueries, StoredRetentionPolicy } from '../housekeeping-store.js';
import { date, dateOrNull, underPrefix, type Clock, type Db } from './control/common.js';

/** Retention policies of projects and the facts a retention run reads. */
export class SqlRetention implements RetentionQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async get(project: string): Promise<StoredRetentionPolicy | null> {
    const row = await this.select().where('p.name', '=', project).executeTakeFirst();
    return row ? toPolicy(row) : null;
  }

  async set(project: string, rules: unknown, schedule: string | null): Promise<boolean> {
    const found = await this.db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst();
    if (!found) return false;
    const at = this.now();
    await this.db
      .insertInto('retention_policies')
      // A new policy's schedule starts now: no catch-up run for times before it existed.
      .values({ project_id: found.id, rules: JSON.stringify(rules), schedule, updated_at: at, last_run_at: at })
      .onConflict((oc) =>
        oc.column('project_id').doUpdateSet({
          rules: (eb) => eb.ref('excluded.rules'),
          schedule: (eb) => eb.ref('excluded.schedule'),
          updated_at: (eb) => eb.ref('excluded.updated_at'),
        }),
      )
      .execute();
    return true;
  }

  async delete(project: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('retention_policies')
      .where('project_id', '=', (eb) => eb.selectFrom('projects').select('id').where('name', '=', project))
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async list(): Promise<StoredRetentionPolicy[]> {
    return (await this.select().orderBy('p.name').execute()).map(toPolicy);
  }

  async claimRun(project: string, slot: Date): Promise<boolean> {
    const result = await this.db
      .updateTable('retention_policies')
      .set({ last_run_at: slot.getTime() })
      .where('project_id', '=', (eb) => eb.selectFrom('projects').select('id').where('name', '=', project))
      .where((eb) => eb.or([eb('last_run_at', 'is', null), eb('last_run_at', '<', slot.getTime())]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async repositories(project: string): Promise<string[]> {
    const range = underPrefix(project);
    const rows = await this.db
      .selectFrom('repositories as r')
      .select('r.name')
      .where((eb) => eb.or([eb('r.name', '=', project), eb.and([eb('r.name', '>=', range.from), eb('r.name', '<', range.to)])]))
      .where((eb) => eb.exists(eb.selectFrom('manifests as m').select('m.id').whereRef('m.repository_id', '=', 'r.id')))
      .orderBy('r.name')
      .execute();
    return rows.map((row) => row.name);
  }

  async manifests(repository: string): Promise<RetentionManifest[]> {
    const rows = await this.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .leftJoin('manifest_pulls as p', (join) => join.onRef('p.repository_id', '=', 'm.repository_id').onRef('p.digest', '=', 'm.digest'))
      .select((eb) => [
        'm.id',
        'm.digest',
        'm.media_type',
        'm.created_at',
        'm.subject_digest',
        'p.pulls',
        'p.last_pulled_at',
        eb
          .exists(
            eb
              .selectFrom('manifest_children as c')
              .innerJoin('manifests as parent', 'parent.id', 'c.manifest_id')
              .select('c.child_digest')
              .whereRef('parent.repository_id', '=', 'm.repository_id')
              .whereRef('c.child_digest', '=', 'm.digest'),
          )
          .as('in_index'),
      ])
      .where('r.name', '=', repository)
      .orderBy('m.created_at', 'desc')
      .orderBy('m.digest')
      .execute();
    const tags = await this.db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .select(['t.name', 't.manifest_id'])
      .where('r.name', '=', repository)
      .orderBy('t.name')
      .execute();
    const byManifest = new Map<string, string[]>();
    for (const t of tags) byManifest.set(String(t.manifest_id), [...(byManifest.get(String(t.manifest_id)) ?? []), t.name]);
    return rows.map((row) => ({
      digest: row.digest,
      mediaType: row.media_type,
      pushedAt: date(row.created_at),
      tags: byManifest.get(String(row.id)) ?? [],
      subject: row.subject_digest,
      inIndex: Boolean(Number(row.in_index)),
      pulls: Number(row.pulls ?? 0),
      lastPulledAt: row.last_pulled_at === null || row.last_pulled_at === undefined ? null : date(row.last_pulled_at),
    }));
  }

  async historyDigests(repository: string, since: Date): Promise<Set<string>> {
    const rows = await this.db
      .selectFrom('tag_history as h')
      .innerJoin('repositories as r', 'r.id', 'h.repository_id')
      .select(['h.previous_digest', 'h.digest'])
      .where('r.name', '=', repository)
      .where('h.at', '>=', since.getTime())
      .execute();
    const digests = new Set<string>();
    for (const row of rows) {
      if (row.previous_digest) digests.add(row.previous_digest);
      if (row.digest) digests.add(row.digest);
    }
    return digests;
  }

  private select() {
    return this.db
      .selectFrom('retention_policies as rp')
      .innerJoin('projects as p', 'p.id', 'rp.project_id')
      .select(['p.name', 'rp.rules', 'rp.schedule', 'rp.updated_at', 'rp.last_run_at']);
  }
}

function toPolicy(row: { name: string; rules: string; schedule: string | null; updated_at: number | string; last_run_at: number | string | null }): StoredRetentionPolicy {
  return { project: row.name, rules: JSON.parse(row.rules) as unknown, schedule: row.schedule, updatedAt: date(row.updated_at), lastRunAt: dateOrNull(row.last_run_at) };
}
