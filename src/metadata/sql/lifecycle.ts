import type { LifecycleQueries, LifecycleSettings } from '../metadata-store.js';
import type { Clock, Db } from './control/common.js';

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
}
