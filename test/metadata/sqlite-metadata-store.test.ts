import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MetadataSchemaTooNewError } from '../../src/metadata/sql/migrations.js';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';
import { metadataStoreSuite } from '../shared/metadata-store-suite.js';
import { testManifest } from '../support/manifests.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'stowage-sqlite-'));
}

metadataStoreSuite('SQLite', async () => {
  const dir = await tempDir();
  const store = await openSqliteMetadataStore(join(dir, 'metadata.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite metadata store file', () => {
  it('keeps data across reopening and refuses a schema newer than the code', async () => {
    const dir = await tempDir();
    const file = join(dir, 'nested', 'metadata.db');
    try {
      const blob = { digest: `sha256:${'a'.repeat(64)}`, size: 42 };
      const manifest = testManifest('reopened', [blob.digest]);
      const first = await openSqliteMetadataStore(file);
      await first.blobs.link('lib/app', blob);
      await first.manifests.put('lib/app', manifest, 'latest');
      await first.close();

      const second = await openSqliteMetadataStore(file);
      expect(await second.blobs.getInRepository('lib/app', blob.digest)).toEqual(blob);
      expect((await second.manifests.getByTag('lib/app', 'latest'))?.content.equals(manifest.content)).toBe(true);
      expect(await second.tags.history('lib/app', 'latest')).toHaveLength(1);
      await second.close();

      const raw = new BetterSqlite3(file);
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      raw
        .prepare('insert into kysely_migration (name, timestamp) values (?, ?)')
        .run('9999_from_the_future', new Date().toISOString());
      raw.close();

      const error = await openSqliteMetadataStore(file).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MetadataSchemaTooNewError);
      expect(error).toMatchObject({ unknownMigrations: ['9999_from_the_future'] });
      expect((error as Error).message).toMatch(/newer than this version of Stowage.*9999_from_the_future/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
