import type { AuditEntry, AuditFilter, AuditQueries, AuditResult, OffsetPage, Paged, StoredAuditEntry } from '../../control-store.js';
import { bulkInsert } from '../precompiled.js';
import type { Database } from '../schema.js';
import { date, id, type Db } from './common.js';

const insertAuditRows = bulkInsert<Database>('audit_log', ['at', 'actor', 'actor_kind', 'address', 'action', 'project', 'target', 'result', 'detail', 'occurrences']);

export class SqlAudit implements AuditQueries {
  constructor(private readonly db: Db) {}

  async append(entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map((e) => [
      e.at.getTime(),
      e.actor,
      e.actorKind,
      e.address,
      e.action,
      e.project,
      e.target,
      e.result,
      e.detail === null ? null : JSON.stringify(e.detail),
      e.count ?? 1,
    ]);
    await this.db.transaction().execute((trx) => insertAuditRows(trx, rows));
  }

  async query(filter: AuditFilter, page: OffsetPage): Promise<Paged<StoredAuditEntry>> {
    let query = this.db.selectFrom('audit_log');
    if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
    if (filter.project !== undefined) query = query.where('project', '=', filter.project);
    if (filter.action !== undefined) query = query.where('action', '=', filter.action);
    if (filter.result !== undefined) query = query.where('result', '=', filter.result);
    if (filter.from !== undefined) query = query.where('at', '>=', filter.from.getTime());
    if (filter.to !== undefined) query = query.where('at', '<', filter.to.getTime());
    const [rows, count] = await Promise.all([
      query.selectAll().orderBy('at', 'desc').orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute(),
      query.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(),
    ]);
    return {
      total: Number(count.n),
      items: rows.map((row) => ({
        id: id(row.id),
        at: date(row.at),
        actor: row.actor,
        actorKind: row.actor_kind,
        address: row.address,
        action: row.action,
        project: row.project,
        target: row.target,
        result: row.result as AuditResult,
        detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
        count: Number(row.occurrences),
      })),
    };
  }

  async purge(before: Date): Promise<number> {
    const result = await this.db.deleteFrom('audit_log').where('at', '<', before.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
