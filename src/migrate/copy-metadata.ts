import pg from 'pg';
import { quote, type SqliteSnapshot, type TableInfo } from './sqlite-snapshot.js';

export interface MetadataCopyProgress {
  table: string;
  tables: number;
  tableIndex: number;
  rows: number;
  tableRows: number;
}

export interface MetadataCopyResult {
  tables: { name: string; rows: number; removed: number }[];
}

/** Rows per INSERT statement (PostgreSQL takes at most 65535 parameters per statement). */
const BATCH = 500;

/**
 * Copies every table of the snapshot into the PostgreSQL database at `url` (whose schema the
 * caller has brought up to date), in one transaction: an interrupted copy leaves the target as
 * it was, and a re-run converges on the source. Rows are upserted by primary key (inserted, or
 * updated to the source's values) and target rows whose key the source no longer has are
 * removed, children before parents. Identity sequences are moved past the copied ids, so that
 * the nodes' next inserts do not collide.
 */
export async function copyMetadata(snapshot: SqliteSnapshot, url: string, onProgress: (progress: MetadataCopyProgress) => void): Promise<MetadataCopyResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = snapshot.tables();
    const targetColumns = await columnTypes(client);
    const result: MetadataCopyResult = { tables: [] };
    await client.query('BEGIN');
    for (const [index, table] of tables.entries()) {
      const columns = table.columns.filter((c) => targetColumns.get(table.name)?.has(c));
      if (!targetColumns.has(table.name)) throw new Error(`table ${table.name} of the source is missing in the target database: is the target running an older Stowage?`);
      const types = targetColumns.get(table.name)!;
      const tableRows = snapshot.count(table.name);
      let rows = 0;
      for (const page of snapshot.rows(table.name, BATCH)) {
        await upsert(client, table, columns, types, page);
        rows += page.length;
        onProgress({ table: table.name, tables: tables.length, tableIndex: index, rows, tableRows });
      }
      result.tables.push({ name: table.name, rows, removed: 0 });
    }
    for (const table of [...tables].reverse()) {
      const entry = result.tables.find((t) => t.name === table.name)!;
      entry.removed = await removeStale(client, snapshot, table);
    }
    for (const table of tables) await advanceIdentity(client, table);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((error as { code?: string }).code === '23505') {
      throw new Error(
        `the target database already holds other data (${(error as Error).message}); migrate into an empty database (nodes started on it before the migration create their own users and keys)`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    await client.end();
  }
}

/** Column name -> PostgreSQL data type, by table, of the public schema. */
async function columnTypes(client: pg.Client): Promise<Map<string, Map<string, string>>> {
  const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
    "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()",
  );
  const tables = new Map<string, Map<string, string>>();
  for (const row of rows) {
    if (!tables.has(row.table_name)) tables.set(row.table_name, new Map());
    tables.get(row.table_name)!.set(row.column_name, row.data_type);
  }
  return tables;
}

async function upsert(client: pg.Client, table: TableInfo, columns: string[], types: Map<string, string>, page: Record<string, unknown>[]): Promise<void> {
  const values: unknown[] = [];
  const tuples = page.map((row) => `(${columns.map((c) => `$${values.push(convert(row[c], types.get(c)!))}`).join(', ')})`);
  const key = table.primaryKey.length > 0 ? table.primaryKey : columns;
  const updatable = columns.filter((c) => !key.includes(c));
  const conflict =
    updatable.length > 0
      ? `ON CONFLICT (${key.map(quote).join(', ')}) DO UPDATE SET ${updatable.map((c) => `${quote(c)} = excluded.${quote(c)}`).join(', ')}`
      : 'ON CONFLICT DO NOTHING';
  await client.query(`INSERT INTO ${quote(table.name)} (${columns.map(quote).join(', ')}) OVERRIDING SYSTEM VALUE VALUES ${tuples.join(', ')} ${conflict}`, values);
}

/** SQLite's values as PostgreSQL wants them (SQLite has no boolean type: 0/1). */
function convert(value: unknown, type: string): unknown {
  if (value === null || value === undefined) return null;
  if (type === 'boolean') return value === 1 || value === true || value === '1';
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Deletes target rows whose primary key the source does not have; resolves to how many. */
async function removeStale(client: pg.Client, snapshot: SqliteSnapshot, table: TableInfo): Promise<number> {
  if (table.primaryKey.length === 0) return 0;
  const keyOf = (row: Record<string, unknown>) => JSON.stringify(table.primaryKey.map((c) => String(row[c])));
  const present = new Set<string>();
  for (const page of snapshot.rows(table.name)) for (const row of page) present.add(keyOf(row));
  const { rows } = await client.query<Record<string, unknown>>(`SELECT ${table.primaryKey.map(quote).join(', ')} FROM ${quote(table.name)}`);
  const stale = rows.filter((row) => !present.has(keyOf(row)));
  for (let i = 0; i < stale.length; i += BATCH) {
    const values: unknown[] = [];
    const batch = stale.slice(i, i + BATCH);
    const where = batch.map((row) => `(${table.primaryKey.map((c) => `${quote(c)} = $${values.push(row[c])}`).join(' AND ')})`).join(' OR ');
    await client.query(`DELETE FROM ${quote(table.name)} WHERE ${where}`, values);
  }
  return stale.length;
}

/** Moves an identity column's sequence past the largest copied id. */
async function advanceIdentity(client: pg.Client, table: TableInfo): Promise<void> {
  const { rows } = await client.query<{ column_name: string }>(
    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
    [table.name],
  );
  for (const { column_name } of rows) {
    await client.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), GREATEST((SELECT max(${quote(column_name)}) FROM ${quote(table.name)}), 1), (SELECT max(${quote(column_name)}) FROM ${quote(table.name)}) IS NOT NULL)`,
      [quote(table.name), column_name],
    );
  }
}
