import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';

/**
 * A query built and compiled by Kysely once, then run with new parameter values. For hot paths
 * (manifest GET, blob HEAD): building and compiling a query costs about five times as much as
 * running it on SQLite. `build` receives placeholder values; the caller passes the real ones in
 * the same order as they appear in the SQL.
 */
export function precompile<DB, Row>(db: Kysely<DB>, build: (db: Kysely<DB>) => Compilable<Row>) {
  const { sql } = build(db).compile();
  return async (...parameters: unknown[]): Promise<Row | undefined> => {
    const result = await db.executeQuery<Row>(CompiledQuery.raw(sql, parameters));
    return result.rows[0];
  };
}

/** Which value fills a compiled statement's parameter: a named one, an item of the list, or a value `build` fixed. */
type Slot<K> = { name: K } | { item: number } | { value: unknown };
interface Shape<K> {
  sql: string;
  slots: Slot<K>[];
}

/** A placeholder value for each named parameter, and the name behind each placeholder. */
function placeholdersFor<K extends string>(names: readonly K[]) {
  const placeholders = Object.fromEntries(names.map((name) => [name, `\u0000${name}`])) as Record<K, string>;
  return { placeholders, byPlaceholder: new Map<unknown, K>(names.map((name) => [placeholders[name], name])) };
}

/** Compiles `query`, noting for each of its parameters the placeholder (named or list item) it came from. */
function compileShape<K>(query: Compilable<unknown>, byPlaceholder: Map<unknown, K>, byItem = new Map<unknown, number>()): Shape<K> {
  const { sql, parameters } = query.compile();
  const slots = parameters.map((value): Slot<K> => (byPlaceholder.has(value) ? { name: byPlaceholder.get(value)! } : byItem.has(value) ? { item: byItem.get(value)! } : { value }));
  return { sql, slots };
}

/** The parameter values of `shape` for these named values (and list, padded with its last value). */
function bind<K extends string>(shape: Shape<K>, values: Record<K, unknown>, list: readonly unknown[] = []): unknown[] {
  const last = list.length - 1;
  return shape.slots.map((slot) => ('name' in slot ? values[slot.name] : 'item' in slot ? list[Math.min(slot.item, last)] : slot.value));
}

/**
 * A statement built and compiled by Kysely once per database (the first time it runs on it or on
 * one of its transactions: they share the dialect adapter), then run with new values. For the
 * write path (upload sessions, blob links), where building a statement costs more than running
 * it on SQLite. `build` gets a placeholder for each named parameter (`p.id`, ...); the caller
 * passes the values by name, in any order. Values that `build` fixed itself stay as they are.
 */
export function statement<DB, const K extends string, Row>(
  names: readonly K[],
  build: (db: Kysely<DB>, p: Record<K, any>) => Compilable<Row>,
): (db: Kysely<DB>, values: Record<K, unknown>) => Promise<QueryResult<Row>> {
  const compiled = new WeakMap<object, Shape<K>>();
  const { placeholders, byPlaceholder } = placeholdersFor(names);
  return (db, values) => {
    const adapter = db.getExecutor().adapter;
    let shape = compiled.get(adapter);
    if (!shape) compiled.set(adapter, (shape = compileShape(build(db, placeholders), byPlaceholder)));
    return db.executeQuery<Row>(CompiledQuery.raw(shape.sql, bind(shape, values)));
  };
}

/** Lengths a `listStatement`'s list is padded to: at most this many shapes compile. */
const LIST_SHAPES = [1, 4, 16, 64, 256, 1024];

/**
 * Like `statement`, for a query that also takes a list of values (`x in (...)`): `build` gets
 * placeholders for the named parameters and a list of them. The list is padded to the next of a
 * few lengths by repeating its last value, so it must be a list where a repeated value changes
 * nothing (an `in` list), of 1 to 1,024 values.
 */
export function listStatement<DB, const K extends string, Row>(
  names: readonly K[],
  build: (db: Kysely<DB>, p: Record<K, any>, list: any[]) => Compilable<Row>,
): (db: Kysely<DB>, values: Record<K, unknown>, list: readonly unknown[]) => Promise<QueryResult<Row>> {
  const compiled = new WeakMap<object, Map<number, Shape<K>>>();
  const { placeholders, byPlaceholder } = placeholdersFor(names);
  return (db, values, list) => {
    const length = LIST_SHAPES.find((n) => n >= list.length);
    if (list.length === 0 || length === undefined) return Promise.reject(new Error(`listStatement: a list of ${list.length} values (1 to ${LIST_SHAPES.at(-1)} allowed)`));
    const adapter = db.getExecutor().adapter;
    let shapes = compiled.get(adapter);
    if (!shapes) compiled.set(adapter, (shapes = new Map()));
    let shape = shapes.get(length);
    if (!shape) {
      const items = Array.from({ length }, (_, index) => `\u0000#${index}`);
      shape = compileShape(build(db, placeholders, items), byPlaceholder, new Map(items.map((item, index) => [item, index])));
      shapes.set(length, shape);
    }
    return db.executeQuery<Row>(CompiledQuery.raw(shape.sql, bind(shape, values, list)));
  };
}

/** Row counts of the statements `bulkInsert` compiles: any batch is sent as chunks of these. */
const BULK_CHUNKS = [128, 32, 8, 1];

/**
 * A multi-row INSERT into `table` of the given columns, compiled once per database and chunk
 * size (at most four shapes), for batched writes (the audit log), where building a 128-row
 * statement with Kysely cost more than running it. Each row gives its values in `columns` order.
 */
export function bulkInsert<DB>(table: keyof DB & string, columns: readonly string[]) {
  const compiled = new WeakMap<object, Map<number, string>>();
  const shape = (db: Kysely<DB>, rows: number): string => {
    const adapter = db.getExecutor().adapter;
    let shapes = compiled.get(adapter);
    if (!shapes) compiled.set(adapter, (shapes = new Map()));
    let sql = shapes.get(rows);
    if (!sql) {
      const row = Object.fromEntries(columns.map((column) => [column, null]));
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the table is a runtime name
      const query = (db as Kysely<any>).insertInto(table).values(Array.from({ length: rows }, () => row)).compile();
      if (query.parameters.length !== rows * columns.length) throw new Error(`bulkInsert ${table}: ${query.parameters.length} parameters compiled, ${rows * columns.length} expected`);
      sql = query.sql;
      shapes.set(rows, sql);
    }
    return sql;
  };
  return async (db: Kysely<DB>, rows: readonly unknown[][]): Promise<void> => {
    for (let at = 0; at < rows.length; ) {
      const size = BULK_CHUNKS.find((n) => n <= rows.length - at)!;
      const chunk = rows.slice(at, at + size);
      for (const values of chunk) if (values.length !== columns.length) throw new Error(`bulkInsert ${table}: a row of ${values.length} values for ${columns.length} columns`);
      await db.executeQuery(CompiledQuery.raw(shape(db, size), chunk.flat()));
      at += size;
    }
  };
}
