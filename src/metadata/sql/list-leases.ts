import { sql, type Kysely, type RawBuilder } from 'kysely';
import { waitAtLeast } from './read-cache.js';
import type { Database } from './schema.js';

/**
 * Listing leases (PostgreSQL only): let a scale-out node answer a repository's tag list, or the
 * catalog, from its own copy between requests, where it cannot see other nodes' commits without
 * a round trip, and still never miss a tag or repository that another node has acknowledged.
 *
 * - A node that (re)reads a listing first takes a lease on it (`take`): a row in `list_leases`
 *   saying "copies of this listing may be served until PostgreSQL's clock shows `until`". Only
 *   then does it read the listing; it serves that copy until its own clock has run the lease's
 *   length from the moment it sent `take`, which is no later than `until`.
 * - A write that adds to a listing (a new tag; a repository's first content) reads the lease
 *   after its commit (`waitOut`) and answers only once the lease has ended. A copy read before
 *   the commit was leased before the write read the lease, so the write waits it out; a copy
 *   leased after that read was read after the commit, so it holds the addition.
 *
 * Removals (tag and manifest deletes, unlinks, repository deletes) already wait out the read
 * caches' full time after their commit (`settle`), which covers these copies too. Writes only
 * wait while some node listed the same thing within the lease's length; the pushes of CI
 * pipelines, which rarely list while they push, do not wait.
 *
 * The table is UNLOGGED: taking a lease writes no WAL and does not wait for a disk flush. After
 * a PostgreSQL crash the table is empty, but a restart takes longer than a lease lasts.
 */
export class ListLeases {
  constructor(
    private readonly db: Kysely<Database>,
    /** How long a lease lasts: the scale-out read caches' time (every node the same). */
    readonly durationMs: number,
    readonly clock: () => number = () => performance.now(),
  ) {}

  /** Takes or extends the lease on `key`; resolves to the local time (`clock`) it lasts until. */
  async take(key: string): Promise<number> {
    return (await this.upsert(key, sql`true`))!;
  }

  /**
   * `take` for a repository's tag list, only when the repository exists (null otherwise): a
   * listing of a name that does not exist keeps nothing, and must not leave a row behind (the
   * table would otherwise grow with every name that any client asks for).
   */
  takeForRepository(repository: string): Promise<number | null> {
    return this.upsert(tagListKey(repository), sql`exists (select 1 from repositories where name = ${repository})`);
  }

  /** Writes the lease on `key` when `condition` holds; its end on the local clock, or null. */
  private async upsert(key: string, condition: RawBuilder<unknown>): Promise<number | null> {
    const sent = this.clock();
    const result = await sql`insert into list_leases (key, until)
                             select ${key}, extract(epoch from clock_timestamp()) * 1000 + ${this.durationMs}
                             where ${condition}
                             on conflict (key) do update set until = greatest(list_leases.until, excluded.until)`.execute(this.db);
    return (result.numAffectedRows ?? 0n) > 0n ? sent + this.durationMs : null;
  }

  /**
   * After a commit that added to the listings `keys`: resolves once their leases have ended.
   * When the leases cannot be read (PostgreSQL went away after the commit), it waits a whole
   * lease's length instead, which any lease taken before this call has run by then: the write
   * committed, so it must not fail now.
   */
  async waitOut(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    let remaining: number;
    try {
      const row = (
        await sql<{ remaining: number | null }>`select max(until) - extract(epoch from clock_timestamp()) * 1000 as remaining
                                                from list_leases where key in (${sql.join(keys)})`.execute(this.db)
      ).rows[0];
      // Counted from this answer, which PostgreSQL computed before it was received.
      remaining = Number(row?.remaining ?? 0);
    } catch {
      remaining = this.durationMs;
    }
    if (remaining > 0) await waitAtLeast(remaining, this.clock);
  }
}

/** The lease key of a repository's tag list. */
export const tagListKey = (repository: string) => `tags:${repository}`;

/** The lease key of the catalog. */
export const catalogKey = 'catalog';
