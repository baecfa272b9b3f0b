import { CompiledQuery, type Compilable, type Kysely } from 'kysely';

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
