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
  const compiled = new WeakMap<object, { sql: string; slots: Array<{ name: K } | { value: unknown }> }>();
  const placeholders = Object.fromEntries(names.map((name) => [name, `\u0000${name}`])) as Record<K, string>;
  const byPlaceholder = new Map<unknown, K>(names.map((name) => [placeholders[name], name]));
  return (db, values) => {
    const adapter = db.getExecutor().adapter;
    let query = compiled.get(adapter);
    if (!query) {
      const { sql, parameters } = build(db, placeholders).compile();
      const slots = parameters.map((value) => (byPlaceholder.has(value) ? { name: byPlaceholder.get(value)! } : { value }));
      query = { sql, slots };
      compiled.set(adapter, query);
    }
    const parameters = query.slots.map((slot) => ('name' in slot ? values[slot.name] : slot.value));
    return db.executeQuery<Row>(CompiledQuery.raw(query.sql, parameters));
  };
}
