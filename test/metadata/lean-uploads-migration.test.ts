// Migration 0012 rebuilds SQLite's uploads table (WITHOUT ROWID, no updated_at index): sessions
// and pins that exist when a node is upgraded must come through it unchanged and stay usable.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InCodeMigrationProvider } from '../../src/metadata/sql/migrations.js';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';

describe('migration 0012_lean_uploads (SQLite)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-lean-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps every upload session and pin, and the sessions work afterwards', async () => {
    const file = join(dir, 'metadata.db');
    const old = new Kysely<any>({ dialect: new SqliteDialect({ database: new BetterSqlite3(file) }) });
    const migrated = await new Migrator({ db: old, provider: new InCodeMigrationProvider('sqlite') }).migrateTo('0011_list_leases');
    expect(migrated.error).toBeUndefined();
    await old
      .insertInto('uploads')
      .values([
        { id: '11111111-1111-4111-8111-111111111111', repository: 'lib/app', size: 512, started_at: 1, updated_at: 2, append_generation: 3, append_expires_at: null, pin_digest: null, blob_digest: `sha256:${'b'.repeat(64)}` },
        { id: '22222222-2222-4222-8222-222222222222', repository: 'lib/app', size: 0, started_at: 4, updated_at: 5, append_generation: 0, append_expires_at: 6, pin_digest: `sha256:${'c'.repeat(64)}`, blob_digest: null },
      ])
      .execute();
    await old.destroy();

    const store = await openSqliteMetadataStore(file);
    try {
      const first = await store.uploads.get('11111111-1111-4111-8111-111111111111');
      expect(first).toMatchObject({ repository: 'lib/app', size: 512, blobDigest: `sha256:${'b'.repeat(64)}` });
      expect(await store.uploads.get('22222222-2222-4222-8222-222222222222')).toMatchObject({ repository: 'lib/app', size: 0 });
      expect(await store.uploads.count()).toBe(2);
      // The stale sweep still finds sessions by age, oldest first (now by scanning the table).
      expect((await store.uploads.listStale(new Date(10), 10)).map((u) => u.id)).toEqual([
        '11111111-1111-4111-8111-111111111111',
        '22222222-2222-4222-8222-222222222222',
      ]);
      // A session survives a claim and an append on the rebuilt table.
      const claimed = await store.uploads.claim('11111111-1111-4111-8111-111111111111', 15_000);
      expect(claimed?.upload.size).toBe(512);
      expect(await store.uploads.endAppend(claimed!.lease, 1024)).toBe(true);
      expect((await store.uploads.get('11111111-1111-4111-8111-111111111111'))?.size).toBe(1024);
    } finally {
      await store.close();
    }
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      const table = raw.prepare("select sql from sqlite_master where type = 'table' and name = 'uploads'").pluck().get() as string;
      expect(table.toLowerCase()).toContain('without rowid');
      const indexes = (raw.prepare("select name from sqlite_master where type = 'index' and tbl_name = 'uploads'").pluck().all() as string[]).sort();
      expect(indexes).toContain('uploads_pin_idx');
      expect(indexes).not.toContain('uploads_updated_at_idx');
    } finally {
      raw.close();
    }
  });
});
