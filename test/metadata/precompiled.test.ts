import BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, Kysely, SqliteDialect, type QueryResult } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bulkInsert, listStatement } from '../../src/metadata/sql/precompiled.js';

interface Db {
  items: { owner: number; name: string };
}

describe('precompiled statements', () => {
  let db: Kysely<Db>;
  let texts: string[];

  beforeEach(async () => {
    db = new Kysely<Db>({ dialect: new SqliteDialect({ database: new BetterSqlite3(':memory:') }) });
    await db.schema.createTable('items').addColumn('owner', 'integer').addColumn('name', 'text').execute();
    // The SQL texts that reach the database, to see which shapes were compiled.
    texts = [];
    const execute = db.executeQuery.bind(db);
    db.executeQuery = (<R>(query: CompiledQuery<R>): Promise<QueryResult<R>> => {
      texts.push(query.sql);
      return execute(query);
    }) as typeof db.executeQuery;
  });
  afterEach(() => db.destroy());

  const names = (n: number, prefix = 'n') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const insert = bulkInsert<Db>('items', ['owner', 'name']);
  const among = listStatement(['owner'], (k: Kysely<Db>, p, list) => k.selectFrom('items').select('name').where('owner', '=', p.owner).where('name', 'in', list).orderBy('name'));

  it('bulkInsert writes every row, in chunks of the few compiled sizes', async () => {
    await insert(db, names(171).map((name) => [1, name]));
    expect(await db.selectFrom('items').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).toEqual({ n: 171 });
    // 171 = 128 + 32 + 8 + 1 + 1 + 1: four shapes, six statements.
    expect(texts).toHaveLength(6);
    expect(new Set(texts).size).toBe(4);
  });

  it('listStatement finds the listed values whatever the list length, padding the list to a few shapes', async () => {
    await insert(db, [...names(700).map((name): unknown[] => [1, name]), [2, 'n1']]);
    texts = [];
    for (const length of [1, 3, 4, 5, 16, 17, 600]) {
      // Every other listed value exists for owner 1; the last one never does.
      const list = [...names(length).filter((_, i) => i % 2 === 0), ...names(length).filter((_, i) => i % 2 === 1).map((name) => `absent-${name}`)];
      const { rows } = await among(db, { owner: 1 }, list);
      expect(rows.map((row) => row.name).sort()).toEqual(names(length).filter((_, i) => i % 2 === 0).sort());
    }
    // Another owner's rows are not found: the named parameter is bound, not the list's padding.
    expect((await among(db, { owner: 2 }, ['n0', 'n1'])).rows).toEqual([{ name: 'n1' }]);
    // Lengths 1 | 3, 4 | 5, 16 | 17 | 600 compiled into 1, 4, 16, 64 and 1,024 placeholders.
    expect(new Set(texts).size).toBe(5);
    expect(Math.max(...texts.map((text) => text.split('?').length - 1))).toBe(1 + 1024);
  });

  it('listStatement refuses an empty list and one longer than its largest shape', async () => {
    await expect(among(db, { owner: 1 }, [])).rejects.toThrow(/a list of 0 values \(1 to 1024 allowed\)/);
    await expect(among(db, { owner: 1 }, names(1025))).rejects.toThrow(/a list of 1025 values/);
  });
});
