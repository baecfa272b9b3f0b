// Metadata stores on a fresh database of each backend, for tests that run on both.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataStore } from '../../src/metadata/metadata-store.js';
import { openPostgresMetadataStore } from '../../src/metadata/sql/postgres.js';
import { openSqliteMetadataStore } from '../../src/metadata/sql/sqlite.js';
import { createDatabase } from './services.js';

export interface MetadataBackend {
  /** Stores on one database: one for SQLite (one writer), three pools for PostgreSQL (as three nodes). */
  stores: MetadataStore[];
  cleanup(): Promise<void>;
}

/**
 * [name, open] pairs for describe.each: SQLite in a temporary directory, PostgreSQL from the
 * global setup. `open(now)` gives the stores that clock (tests that move time).
 */
export function metadataBackends(label: string): [string, (now?: () => number) => Promise<MetadataBackend>][] {
  return [
    [
      'SQLite',
      async (now) => {
        const dir = await mkdtemp(join(tmpdir(), `stowage-${label}-`));
        const store = await openSqliteMetadataStore(join(dir, 'metadata.db'), now ? { now } : {});
        return { stores: [store], cleanup: async () => (await store.close(), await rm(dir, { recursive: true, force: true })) };
      },
    ],
    [
      'PostgreSQL',
      async (now) => {
        const database = await createDatabase(label);
        const stores = await Promise.all([0, 1, 2].map(() => openPostgresMetadataStore(database.url, { poolSize: 3, ...(now ? { now } : {}) })));
        return {
          stores,
          cleanup: async () => {
            for (const store of stores) await store.close();
            await database.drop();
          },
        };
      },
    ],
  ];
}
