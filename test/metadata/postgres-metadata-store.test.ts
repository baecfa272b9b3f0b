import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { ListLeases } from '../../src/metadata/sql/list-leases.js';
import type { Database } from '../../src/metadata/sql/schema.js';
import { MetadataSchemaTooNewError, MIGRATION_TABLE } from '../../src/metadata/sql/migrations.js';
import { openPostgresMetadataStore } from '../../src/metadata/sql/postgres.js';
import { metadataStoreSuite } from '../shared/metadata-store-suite.js';
import { createDatabase } from '../support/services.js';
import { testManifest } from '../support/manifests.js';

// PostgreSQL started by the global setup; a new database per test.
metadataStoreSuite('PostgreSQL', async () => {
  const database = await createDatabase('suite');
  const store = await openPostgresMetadataStore(database.url, { poolSize: 4 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await database.drop();
    },
  };
});

const blob = { digest: `sha256:${'a'.repeat(64)}`, size: 42 };

const manifestOf = (seed: string) => testManifest(seed, [blob.digest]);

async function query(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

describe('PostgreSQL metadata store', () => {
  it('migrates once when several nodes start together (advisory lock), then shares the data', async () => {
    const database = await createDatabase('concurrent-migrations');
    try {
      // Eight "nodes" open the same empty database at the same moment.
      const stores = await Promise.all(Array.from({ length: 8 }, () => openPostgresMetadataStore(database.url, { poolSize: 2 })));
      const migrations = await query(database.url, `select name from ${MIGRATION_TABLE} order by name`);
      expect(migrations.rows.map((r: { name: string }) => r.name)).toEqual(
        [...new Set(migrations.rows.map((r: { name: string }) => r.name))],
      );
      expect(migrations.rows.length).toBeGreaterThanOrEqual(1);
      // What one node writes, every other reads.
      await stores[0]!.blobs.link('lib/app', blob);
      await stores[3]!.manifests.put('lib/app', manifestOf('one'), 'latest');
      for (const store of stores) {
        expect((await store.tags.get('lib/app', 'latest'))?.digest).toBe(manifestOf('one').digest);
      }
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await database.drop();
    }
  });

  it('refuses to start against a schema newer than the code, with a clear message', async () => {
    const database = await createDatabase('too-new');
    try {
      const store = await openPostgresMetadataStore(database.url);
      await store.close();
      await query(database.url, `insert into ${MIGRATION_TABLE} (name, timestamp) values ($1, $2)`, [
        '9999_from_the_future',
        new Date().toISOString(),
      ]);
      const error = await openPostgresMetadataStore(database.url).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MetadataSchemaTooNewError);
      expect(error).toMatchObject({ unknownMigrations: ['9999_from_the_future'] });
      expect((error as Error).message).toMatch(/newer than this version of Stowage.*9999_from_the_future/);
    } finally {
      await database.drop();
    }
  });

  it('stores 64-bit sizes and reads them back as numbers; orders names byte-wise', async () => {
    const database = await createDatabase('types');
    const store = await openPostgresMetadataStore(database.url);
    try {
      const big = { digest: `sha256:${'b'.repeat(64)}`, size: 2 ** 40 + 7 };
      await store.blobs.link('r', big);
      expect(await store.blobs.getInRepository('r', big.digest)).toEqual(big);
      expect(await store.blobs.totalSize()).toBe(big.size);
      // Byte order, not the locale's: uppercase before lowercase, '-' before digits.
      for (const name of ['b', 'B', 'a-1', 'a1', 'a']) await store.blobs.link(name, blob);
      expect(await store.repositories.list({ limit: 10 })).toEqual(['B', 'a', 'a-1', 'a1', 'b', 'r']);
      const types = await query(database.url, `select pg_typeof(size)::text as t from blobs limit 1`);
      expect(types.rows[0]).toEqual({ t: 'bigint' });
    } finally {
      await store.close();
      await database.drop();
    }
  });

  it('answers concurrent hot-path lookups (sent together in batches) each with its own row, and misses with none', async () => {
    const database = await createDatabase('batched-lookups');
    // poolSize 2: one lookup in flight at a time, the others wait and go out together.
    const store = await openPostgresMetadataStore(database.url, { poolSize: 2 });
    try {
      const manifests = Array.from({ length: 6 }, (_, i) => manifestOf(`batch${i}`));
      await store.blobs.link('r0', blob);
      await store.blobs.link('r1', blob);
      for (const [i, m] of manifests.entries()) await store.manifests.put(`r${i % 2}`, m, `t${i}`);
      const lookups = Array.from({ length: 200 }, (_, n) => {
        const i = n % manifests.length;
        const repository = `r${(i + (n % 3 === 0 ? 1 : 0)) % 2}`; // every third asks the wrong repository
        const found = repository === `r${i % 2}`;
        switch (n % 4) {
          case 0:
            return store.manifests.getByTag(repository, `t${i}`).then((m) => expect(m?.digest ?? null).toBe(found ? manifests[i]!.digest : null));
          case 1:
            return store.manifests.get(repository, manifests[i]!.digest).then((m) => {
              expect(m?.content.equals(manifests[i]!.content) ?? null).toBe(found ? true : null);
            });
          case 2:
            return store.blobs.getInRepository(n % 5 === 0 ? 'nowhere' : repository, blob.digest).then((b) => expect(b).toEqual(n % 5 === 0 ? null : blob));
          default:
            return store.tags.list(repository, { limit: 10 }).then((tags) => expect(tags).toEqual(manifests.map((_, j) => `t${j}`).filter((_, j) => `r${j % 2}` === repository)));
        }
      });
      await Promise.all(lookups);
    } finally {
      await store.close();
      await database.drop();
    }
  });

  it('retries transactions that PostgreSQL aborts as serialization failures', async () => {
    const database = await createDatabase('serializable');
    // Under SERIALIZABLE, concurrent writers of one repository abort each other (SQLSTATE 40001)
    // instead of waiting: every put below succeeds only because the store runs it again.
    await query(database.url, `alter database "${database.name}" set default_transaction_isolation = 'serializable'`);
    const writers = await Promise.all(Array.from({ length: 3 }, () => openPostgresMetadataStore(database.url, { poolSize: 3 })));
    try {
      const check = await query(database.url, 'show default_transaction_isolation');
      expect(check.rows[0]).toEqual({ default_transaction_isolation: 'serializable' });
      await writers[0]!.blobs.link('r', blob);
      const manifests = Array.from({ length: 6 }, (_, i) => manifestOf(`s${i}`));
      await Promise.all(manifests.map((m, i) => writers[i % 3]!.manifests.put('r', m, 'latest')));
      const history = await writers[1]!.tags.history('r', 'latest');
      expect(history).toHaveLength(6);
      expect((await writers[2]!.tags.get('r', 'latest'))?.digest).toBe(history[0]!.digest);
    } finally {
      await Promise.all(writers.map((w) => w.close()));
      await database.drop();
    }
  });

  it('keeps tags consistent when many connections move them at once (last writer wins)', async () => {
    const database = await createDatabase('contention');
    const writers = await Promise.all(Array.from({ length: 4 }, () => openPostgresMetadataStore(database.url, { poolSize: 4 })));
    try {
      await writers[0]!.blobs.link('r', blob);
      const manifests = Array.from({ length: 12 }, (_, i) => manifestOf(`m${i}`));
      // Each writer pushes every manifest to three shared tags, in a different order.
      await Promise.all(
        writers.flatMap((w, wi) =>
          manifests.map((m, mi) => w.manifests.put('r', m, ['x', 'y', 'z'][(mi + wi) % 3]!)),
        ),
      );
      for (const tag of ['x', 'y', 'z']) {
        const current = await writers[1]!.tags.get('r', tag);
        const history = await writers[2]!.tags.history('r', tag);
        // The newest history entry is what the tag names now, and the chain of moves is unbroken.
        expect(history[0]?.digest).toBe(current?.digest);
        for (let i = 0; i < history.length - 1; i++) expect(history[i]!.previousDigest).toBe(history[i + 1]!.digest);
        expect(await writers[3]!.manifests.get('r', current!.digest)).not.toBeNull();
      }
    } finally {
      await Promise.all(writers.map((w) => w.close()));
      await database.drop();
    }
  });

  it('a tag list and a catalog kept by one node show what another node added, once its write has answered (listing leases)', async () => {
    const database = await createDatabase('list-leases');
    // A long cache time, so that a copy served past the other node's write would be seen here.
    const ttl = 2_000;
    const [a, b] = await Promise.all([0, 1].map(() => openPostgresMetadataStore(database.url, { poolSize: 2, readCacheTtlMs: ttl })));
    const otherBlob = { digest: `sha256:${'b'.repeat(64)}`, size: 7 };
    try {
      await a!.blobs.link('lib/app', blob);
      await a!.manifests.put('lib/app', manifestOf('one'), 'v1');
      // Nobody lists yet: adding a tag, a repository's content, does not wait for anything.
      let started = performance.now();
      await a!.manifests.put('lib/app', manifestOf('two'), 'v2');
      await a!.blobs.link('lib/other', blob);
      expect(performance.now() - started).toBeLessThan(ttl);

      // B lists (and keeps its copies under leases), then A adds a tag and a repository.
      expect(await b!.tags.list('lib/app', { limit: 100 })).toEqual(['v1', 'v2']);
      started = performance.now();
      await a!.manifests.put('lib/app', manifestOf('three'), 'v3');
      // B sees the new tag: the write answered only once B's lease on the tag list had ended.
      expect(await b!.tags.list('lib/app', { limit: 100 })).toEqual(['v1', 'v2', 'v3']);
      expect(performance.now() - started).toBeGreaterThanOrEqual(ttl * 0.9);

      expect(await b!.repositories.list({ limit: 100 })).toEqual(['lib/app', 'lib/other']);
      started = performance.now();
      await a!.blobs.link('lib/new', otherBlob);
      expect(await b!.repositories.list({ limit: 100 })).toEqual(['lib/app', 'lib/new', 'lib/other']);
      expect(performance.now() - started).toBeGreaterThanOrEqual(ttl * 0.9);

      // Linking into a repository that has content adds nothing to the catalog: no wait.
      expect(await b!.repositories.list({ limit: 100 })).toHaveLength(3);
      started = performance.now();
      await a!.blobs.link('lib/new', blob);
      expect(performance.now() - started).toBeLessThan(ttl);
      // B still answers from its copies (no round trip), which are still right.
      expect(await b!.tags.list('lib/app', { last: 'v1', limit: 1 })).toEqual(['v2']);
      // Listing names that do not exist leaves no lease behind.
      for (const name of ['lib/missing', 'nobody/here']) expect(await b!.tags.list(name, { limit: 100 })).toEqual([]);
      const keys = (await query(database.url, 'select key from list_leases order by key')).rows.map((r: { key: string }) => r.key);
      expect(keys).toEqual(['catalog', 'tags:lib/app']);
    } finally {
      await Promise.all([a, b].map((s) => s!.close()));
      await database.drop();
    }
  });
});

describe('listing leases when PostgreSQL is gone', () => {
  it('a write that committed waits a whole lease instead of failing when the lease cannot be read', async () => {
    // Nothing listens on port 1: every query fails at once, as after a database outage.
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: 'postgres://stowage@127.0.0.1:1/none', connectionTimeoutMillis: 2_000 }) }) });
    try {
      const leases = new ListLeases(db, 300);
      await expect(leases.take('tags:lib/app')).rejects.toThrow();
      const started = performance.now();
      await leases.waitOut(['tags:lib/app']);
      expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    } finally {
      await db.destroy();
    }
  });
});
