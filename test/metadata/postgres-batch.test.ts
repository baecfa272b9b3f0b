import { describe, expect, it } from 'vitest';
import type { QueryResult } from 'kysely';
import { MetadataUnavailableError } from '../../src/metadata/metadata-store.js';
import { HotLookups } from '../../src/metadata/sql/postgres-batch.js';

const TEXT = 'select "x" from "t" where "a" = $1 and "b" = $2';

/** A fake database: `t` holds rows (a, b, x); answers the original text and its batched form. */
function fakeDatabase(options: { failBatched?: Error } = {}) {
  const calls: { text: string; values: ReadonlyArray<unknown> }[] = [];
  const table = [
    { a: 'r1', b: 'k1', x: 1 },
    { a: 'r1', b: 'k2', x: 2 },
    { a: 'r2', b: 'k1', x: 3 },
  ];
  const run = async <R,>(text: string, values: ReadonlyArray<unknown>): Promise<QueryResult<R>> => {
    calls.push({ text, values });
    await new Promise((ok) => setTimeout(ok, 5));
    if (text === TEXT) return { rows: table.filter((r) => r.a === values[0] && r.b === values[1]).map(({ x }) => ({ x })) as R[] };
    if (options.failBatched) throw options.failBatched;
    expect(text).toContain('unnest($1::text[], $2::text[]) with ordinality');
    expect(text).toContain('"a" = "stowage_batch"."p1" and "b" = "stowage_batch"."p2"');
    const [as, bs] = values as string[][];
    const rows = as!.flatMap((a, i) => table.filter((r) => r.a === a && r.b === bs![i]).map(({ x }) => ({ stowage_batch_index: i + 1, x })));
    return { rows: rows as R[] };
  };
  return { run, calls };
}

const keys = [
  ['r1', 'k1', 1],
  ['r1', 'k2', 2],
  ['r2', 'k1', 3],
  ['r2', 'k2', undefined],
  ['r3', 'k1', undefined],
] as const;

describe('HotLookups', () => {
  it('sends lookups that wait for a free slot together, each answered with its own rows', async () => {
    const db = fakeDatabase();
    const hot = new HotLookups(db.run, 1);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, n) => hot.lookup<{ x: number }>(TEXT, keys[n % 5]!.slice(0, 2))));
    answers.forEach((answer, n) => expect(answer.rows[0]?.x).toBe(keys[n % 5]![2]));
    // The first alone, the 39 that waited in one statement.
    expect(db.calls.length).toBe(2);
    expect(db.calls[1]!.values).toEqual([Array.from({ length: 39 }, (_, n) => keys[(n + 1) % 5]![0]), Array.from({ length: 39 }, (_, n) => keys[(n + 1) % 5]![1])]);
  });

  it('runs each lookup on its own when nothing waits', async () => {
    const db = fakeDatabase();
    const hot = new HotLookups(db.run, 2);
    for (const [a, b, x] of keys) expect((await hot.lookup<{ x: number }>(TEXT, [a, b])).rows[0]?.x).toBe(x);
    expect(db.calls.every((c) => c.text === TEXT)).toBe(true);
  });

  it('falls back to one statement per lookup when the batched statement fails, but not when the database is unavailable', async () => {
    const db = fakeDatabase({ failBatched: new Error('operator does not exist: integer = text') });
    const hot = new HotLookups(db.run, 1);
    const answers = await Promise.all(keys.map(([a, b]) => hot.lookup<{ x: number }>(TEXT, [a, b])));
    answers.forEach((answer, n) => expect(answer.rows[0]?.x).toBe(keys[n]![2]));

    const down = fakeDatabase({ failBatched: new MetadataUnavailableError('metadata database unavailable: test') });
    const hotDown = new HotLookups(down.run, 1);
    const results = await Promise.allSettled(keys.map(([a, b]) => hotDown.lookup(TEXT, [a, b])));
    expect(results[0]!.status).toBe('fulfilled');
    for (const r of results.slice(1)) expect(r.status === 'rejected' && r.reason instanceof MetadataUnavailableError).toBe(true);
  });
});
