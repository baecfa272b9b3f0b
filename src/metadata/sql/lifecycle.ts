import type { LifecycleQueries, LifecycleSettings, TagRule } from '../metadata-store.js';
import { date, id, type Clock, type Db } from './control/common.js';
import { statement } from './precompiled.js';

// Read by every manifest push (the immutable-tag check): compiled once (see statement).
const selectRules = statement(['project'], (db: Db, p) =>
  db
    .selectFrom('tag_rules as r')
    .innerJoin('projects as p', 'p.id', 'r.project_id')
    .select(['r.id', 'r.repository', 'r.tag', 'r.created_by', 'r.created_at'])
    .where('p.name', '=', p.project)
    .orderBy('r.id'),
);

/** Per-project lifecycle settings (project_lifecycle, 0003). */
export class SqlLifecycle implements LifecycleQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async get(project: string): Promise<LifecycleSettings | null> {
    const row = await this.db
      .selectFrom('projects as p')
      .leftJoin('project_lifecycle as l', 'l.project_id', 'p.id')
      .select('l.history_window_ms')
      .where('p.name', '=', project)
      .executeTakeFirst();
    if (!row) return null;
    return { historyWindowMs: row.history_window_ms === null || row.history_window_ms === undefined ? null : Number(row.history_window_ms) };
  }

  async set(project: string, settings: LifecycleSettings): Promise<boolean> {
    const found = await this.db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst();
    if (!found) return false;
    await this.db
      .insertInto('project_lifecycle')
      .values({ project_id: found.id, history_window_ms: settings.historyWindowMs, updated_at: this.now() })
      .onConflict((oc) =>
        oc.column('project_id').doUpdateSet({
          history_window_ms: (eb) => eb.ref('excluded.history_window_ms'),
          updated_at: (eb) => eb.ref('excluded.updated_at'),
        }),
      )
      .execute();
    return true;
  }

  async rules(project: string): Promise<TagRule[]> {
    const { rows } = await selectRules(this.db, { project });
    return rows.map((row) => ({ id: id(row.id), repository: row.repository, tag: row.tag, createdBy: row.created_by, createdAt: date(row.created_at) }));
  }

  async addRule(project: string, rule: { repository: string; tag: string; createdBy: string | null }): Promise<TagRule | null> {
    const found = await this.db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst();
    if (!found) return null;
    const at = this.now();
    const row = await this.db
      .insertInto('tag_rules')
      .values({ project_id: found.id, repository: rule.repository, tag: rule.tag, created_by: rule.createdBy, created_at: at })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: id(row.id), repository: rule.repository, tag: rule.tag, createdBy: rule.createdBy, createdAt: date(at) };
  }

  async deleteRule(project: string, ruleId: string): Promise<boolean> {
    if (!/^\d{1,18}$/.test(ruleId)) return false;
    const found = await this.db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst();
    if (!found) return false;
    const result = await this.db.deleteFrom('tag_rules').where('project_id', '=', found.id).where('id', '=', Number(ruleId)).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
