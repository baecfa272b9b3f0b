import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPostgresMetadataStore } from '../../src/metadata/sql/postgres.js';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';
import { controlStoreSuite } from '../shared/control-store-suite.js';
import { createDatabase } from '../support/services.js';

controlStoreSuite('SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-control-'));
  const store = await openSqliteMetadataStore(join(dir, 'metadata.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

// PostgreSQL started by the global setup; a new database per test.
controlStoreSuite('PostgreSQL', async () => {
  const database = await createDatabase('control');
  const store = await openPostgresMetadataStore(database.url, { poolSize: 4 });
  return {
    store,
    another: () => openPostgresMetadataStore(database.url, { poolSize: 2 }),
    cleanup: async () => {
      await store.close();
      await database.drop();
    },
  };
});
