import BetterSqlite3 from 'better-sqlite3';

/** A table of the source database: its columns, primary key and the tables it references. */
export interface TableInfo {
  name: string;
  columns: string[];
  primaryKey: string[];
  references: string[];
}

/**
 * Tables never copied: upload sessions (their staging data stays on the source's disk, so a
 * session could not continue on the target; clients start a new upload), the migration
 * bookkeeping (the target runs its own migrations) and SQLite's read-cache counter
 * (content_version, which PostgreSQL does not have).
 */
const SKIPPED = new Set(['uploads', 'kysely_migration', 'kysely_migration_lock', 'content_version']);

/**
 * A read-only, consistent view of a SQLite metadata database, also while a server writes to it:
 * the reads run in one transaction, which in WAL mode sees the database as of its first read.
 */
export class SqliteSnapshot {
  private readonly db: BetterSqlite3.Database;

  constructor(file: string) {
    this.db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.db.prepare('BEGIN').run();
    // The snapshot starts with the first read.
    this.db.prepare('SELECT count(*) FROM sqlite_master').get();
  }

  /** Names of the migrations this database has run. */
  migrations(): string[] {
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'").get();
    if (!exists) return [];
    return (this.db.prepare('SELECT name FROM kysely_migration ORDER BY name').all() as { name: string }[]).map((r) => r.name);
  }

  /**
   * Every table to copy, each after the tables it references (foreign keys), so that inserting
   * in this order satisfies the constraints. Found from the schema itself: tables added by later
   * migrations are covered without a change here.
   */
  tables(): TableInfo[] {
    const names = (this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[])
      .map((r) => r.name)
      .filter((name) => !SKIPPED.has(name));
    const infos = new Map<string, TableInfo>();
    for (const name of names) {
      const columns = this.db.prepare(`PRAGMA table_info(${quote(name)})`).all() as { name: string; pk: number }[];
      const foreign = this.db.prepare(`PRAGMA foreign_key_list(${quote(name)})`).all() as { table: string }[];
      infos.set(name, {
        name,
        columns: columns.map((c) => c.name),
        primaryKey: columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name),
        references: [...new Set(foreign.map((f) => f.table))].filter((t) => t !== name && names.includes(t)),
      });
    }
    const ordered: TableInfo[] = [];
    const placed = new Set<string>();
    const visit = (name: string, path: string[]) => {
      if (placed.has(name)) return;
      if (path.includes(name)) throw new Error(`foreign keys form a cycle: ${[...path, name].join(' -> ')}`);
      const info = infos.get(name)!;
      for (const parent of info.references) visit(parent, [...path, name]);
      placed.add(name);
      ordered.push(info);
    };
    for (const name of names) visit(name, []);
    return ordered;
  }

  count(table: string): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM ${quote(table)}`).get() as { n: number }).n;
  }

  /** The rows of a table, in pages of `size`, in rowid (insertion) order. */
  *rows(table: string, size = 1000): Generator<Record<string, unknown>[]> {
    const withRowid = this.db.prepare(`SELECT rowid AS "__rowid", * FROM ${quote(table)} WHERE rowid > ? ORDER BY rowid LIMIT ?`);
    let last = -Infinity;
    for (;;) {
      const page = withRowid.all(last === -Infinity ? Number.MIN_SAFE_INTEGER : last, size) as Record<string, unknown>[];
      if (page.length === 0) return;
      last = page[page.length - 1]!.__rowid as number;
      yield page.map(({ __rowid: _, ...row }) => row);
    }
  }

  /** Committed blobs (digest, size) as of the snapshot. */
  *blobs(): Generator<{ digest: string; size: number }> {
    for (const page of this.rows('blobs')) for (const row of page) yield { digest: String(row.digest), size: Number(row.size) };
  }

  close(): void {
    this.db.prepare('COMMIT').run();
    this.db.close();
  }
}

export function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
