import { sql } from 'kysely';
import type { PullCount, PullIncrement, PullStatsQueries } from '../housekeeping-store.js';
import { date, type Db } from './control/common.js';

/** Pull statistics: counters per manifest and per tag, added to in batches (see PullRecorder). */
export class SqlPullStats implements PullStatsQueries {
  constructor(private readonly db: Db) {}

  async add(batch: PullIncrement[]): Promise<void> {
    if (batch.length === 0) return;
    const manifests = sum(batch, (i) => `${i.repository}\n${i.digest}`);
    const tags = sum(batch.filter((i) => i.tag !== null), (i) => `${i.repository}\n${i.tag}`);
    await this.db.transaction().execute(async (trx) => {
      await upsertCounts(trx, 'manifest_pulls', 'digest', manifests);
      await upsertCounts(trx, 'tag_pulls', 'tag', tags);
    });
  }

  async manifests(repository: string, digests: string[]): Promise<Map<string, PullCount>> {
    if (digests.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('manifest_pulls as p')
      .innerJoin('repositories as r', 'r.id', 'p.repository_id')
      .select(['p.digest as key', 'p.pulls', 'p.last_pulled_at'])
      .where('r.name', '=', repository)
      .where('p.digest', 'in', digests)
      .execute();
    return counts(rows);
  }

  async tags(repository: string, tags: string[]): Promise<Map<string, PullCount>> {
    if (tags.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('tag_pulls as p')
      .innerJoin('repositories as r', 'r.id', 'p.repository_id')
      .select(['p.tag as key', 'p.pulls', 'p.last_pulled_at'])
      .where('r.name', '=', repository)
      .where('p.tag', 'in', tags)
      .execute();
    return counts(rows);
  }
}

/**
 * Adds counts to `table` (keyed by repository id and `column`), creating rows as needed:
 * INSERT … SELECT from repositories, so a repository deleted meanwhile is skipped.
 */
async function upsertCounts(trx: Db, table: 'manifest_pulls' | 'tag_pulls', column: 'digest' | 'tag', counts: Map<string, { count: number; lastAt: number }>): Promise<void> {
  // In key order: nodes flushing at the same time lock shared rows in the same order (no deadlock).
  for (const [key, { count, lastAt }] of [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const [repository, value] = key.split('\n') as [string, string];
    // The two tables have the same shape but for the key column's name; Kysely cannot type that.
    const into = trx.insertInto(table as 'tag_pulls') as any;
    await into
      .columns(['repository_id', column, 'pulls', 'last_pulled_at'])
      .expression(trx.selectFrom('repositories').select((s) => ['id', s.val(value).as(column), int64(count).as('pulls'), int64(lastAt).as('last_pulled_at')]).where('name', '=', repository))
      .onConflict((oc: any) =>
        oc.columns(['repository_id', column]).doUpdateSet({
          pulls: sql`${sql.table(table)}.pulls + excluded.pulls`,
          last_pulled_at: sql`case when excluded.last_pulled_at > ${sql.table(table)}.last_pulled_at then excluded.last_pulled_at else ${sql.table(table)}.last_pulled_at end`,
        }),
      )
      .execute();
  }
}

/** A number parameter typed as bigint (PostgreSQL types untyped parameters in a SELECT list as text). */
function int64(value: number) {
  return sql<number>`cast(${value} as bigint)`;
}

/** Merges increments with the same key (a batch may hold several for one manifest). */
function sum(batch: PullIncrement[], key: (i: PullIncrement) => string): Map<string, { count: number; lastAt: number }> {
  const merged = new Map<string, { count: number; lastAt: number }>();
  for (const item of batch) {
    const k = key(item);
    const seen = merged.get(k);
    if (seen) {
      seen.count += item.count;
      seen.lastAt = Math.max(seen.lastAt, item.lastAt);
    } else merged.set(k, { count: item.count, lastAt: item.lastAt });
  }
  return merged;
}

function counts(rows: { key: string; pulls: number | string; last_pulled_at: number | string }[]): Map<string, PullCount> {
  return new Map(rows.map((row) => [row.key, { pulls: Number(row.pulls), lastPulledAt: date(row.last_pulled_at) }]));
}
