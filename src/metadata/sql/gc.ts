import { sql, type ColumnType, type Generated, type Kysely } from 'kysely';
import type { GcCandidate, GcProgress, GcQueries, GcRun, GcRunInput, GcStatus, GcTotals } from '../gc-store.js';
import type { BlobRecord, PageRequest } from '../metadata-store.js';
import { date, dateOrNull, id, underPrefix, type Clock, type Db } from './control/common.js';
import type { Database, Id, Int64 } from './schema.js';
import { transaction } from './sql-metadata-store.js';

/** Tables of 0005_gc (kept here: only this module reads them). */
interface GcDatabase {
  gc_runs: {
    id: Generated<Id>;
    status: string;
    phase: string;
    grace_ms: Int64;
    project: string | null;
    actor: string;
    started_at: Int64;
    updated_at: Int64;
    finished_at: ColumnType<number | string | null, number | null | undefined, number | null>;
    blobs_examined: ColumnType<number | string, number | undefined, number>;
    bytes_examined: ColumnType<number | string, number | undefined, number>;
    blobs_marked: ColumnType<number | string, number | undefined, number>;
    blobs_freed: ColumnType<number | string, number | undefined, number>;
    bytes_freed: ColumnType<number | string, number | undefined, number>;
    uploads_removed: ColumnType<number | string, number | undefined, number>;
    error: string | null;
  };
  gc_lease: { name: string; run_id: Id; expires_at: Int64 };
}
type GcDb = Kysely<Database & GcDatabase>;

const LEASE = 'gc';
/** Finished runs are kept this long (their records feed the API and the metrics' totals). */
const RUN_RETENTION_MS = 90 * 86_400_000;

/** Garbage collection's metadata steps on SQLite and PostgreSQL (GcQueries documents them). */
export class SqlGc implements GcQueries {
  private readonly gdb: GcDb;

  constructor(
    private readonly db: Db,
    private readonly now: Clock,
    /** Waits out the hot lookups' caches after a change (see readCaching). */
    private readonly settle: () => Promise<void>,
  ) {
    this.gdb = db as unknown as GcDb;
  }

  async candidates(before: Date, page: PageRequest, project?: string): Promise<GcCandidate[]> {
    if (page.limit <= 0) return [];
    let query = this.db
      .selectFrom('blobs as b')
      .select((eb) => [
        'b.digest',
        'b.size',
        'b.seen_at',
        eb.selectFrom('repository_blobs as rb').select((e) => e.fn.countAll<number | string>().as('n')).whereRef('rb.digest', '=', 'b.digest').as('links'),
      ])
      .where('b.seen_at', '<', before.getTime())
      .where('b.deleting_since', 'is', null)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('manifest_blobs as mb').select('mb.digest').whereRef('mb.digest', '=', 'b.digest'))))
      .where((eb) => eb.not(eb.exists(eb.selectFrom('uploads as u').select('u.id').whereRef('u.pin_digest', '=', 'b.digest'))));
    if (project !== undefined) {
      const { from, to } = underPrefix(project);
      query = query.where((eb) =>
        eb.exists(
          eb
            .selectFrom('repository_blobs as rb')
            .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
            .select('rb.digest')
            .whereRef('rb.digest', '=', 'b.digest')
            .where((e) => e.or([e('r.name', '=', project), e.and([e('r.name', '>=', from), e('r.name', '<', to)])])),
        ),
      );
    }
    if (page.last !== undefined) query = query.where('b.digest', '>', page.last);
    const rows = await query.orderBy('b.digest').limit(page.limit).execute();
    return rows.map((row) => ({ digest: row.digest, size: Number(row.size), seenAt: date(row.seen_at ?? 0), repositories: Number(row.links ?? 0) }));
  }

  async mark(digest: string, before: Date): Promise<boolean> {
    return transaction(this.db, async (trx) => {
      // First, the lock a manifest PUT (and every other writer of a repository) takes first, on
      // every repository the blob is linked into: a PUT that checked this blob's link either
      // committed before (its reference is seen below) or waits and then finds the link gone
      // (MANIFEST_BLOB_UNKNOWN). A write as the first statement also takes SQLite's write lock
      // at once (a read first could not be upgraded while another process writes).
      const locked = await trx
        .updateTable('repositories')
        .set((eb) => ({ name: eb.ref('name') }))
        .where('id', 'in', (eb) => eb.selectFrom('repository_blobs').select('repository_id').where('digest', '=', digest))
        .returning('id')
        .execute();
      const repositories = locked.map((r) => String(r.id));
      // The blob's row, while live: completions (reserve) and mounts write it too, so each of
      // them either committed before the checks below or waits for this transaction.
      const row = await trx
        .updateTable('blobs')
        .set({ deleting_since: sql<number | null>`deleting_since` })
        .where('digest', '=', digest)
        .where('deleting_since', 'is', null)
        .returning('seen_at')
        .executeTakeFirst();
      if (!row || Number(row.seen_at ?? 0) >= before.getTime()) return false;
      const used = await trx.selectFrom('manifest_blobs').select('digest').where('digest', '=', digest).limit(1).executeTakeFirst();
      if (used) return false;
      const pinned = await trx.selectFrom('uploads').select('id').where('pin_digest', '=', digest).limit(1).executeTakeFirst();
      if (pinned) return false;
      // Linked meanwhile into a repository not locked above: leave it for the next run.
      const known = new Set(repositories);
      const linked = await trx.selectFrom('repository_blobs').select('repository_id').where('digest', '=', digest).execute();
      if (linked.some((r) => !known.has(String(r.repository_id)))) return false;
      await trx.deleteFrom('repository_blobs').where('digest', '=', digest).execute();
      await trx.updateTable('blobs').set({ deleting_since: this.now() }).where('digest', '=', digest).execute();
      return true;
    });
  }

  async marked(page: PageRequest): Promise<BlobRecord[]> {
    let query = this.db.selectFrom('blobs').select(['digest', 'size']).where('deleting_since', 'is not', null);
    if (page.last !== undefined) query = query.where('digest', '>', page.last);
    const rows = await query.orderBy('digest').limit(page.limit).execute();
    return rows.map((row) => ({ digest: row.digest, size: Number(row.size) }));
  }

  async sweep(digests: string[], deleteBytes: (digests: string[]) => Promise<void>): Promise<BlobRecord[]> {
    if (digests.length === 0) return [];
    // Marking removed the blobs' repository links; a node may still answer from a lookup it
    // cached before that, so the bytes go only once such entries have expired everywhere.
    await this.settle();
    return transaction(this.db, async (trx) => {
      // Locks the rows that are still marked: a completion that rescues one (reserve) waits until
      // its bytes and row are gone, then records it anew and stores the bytes again.
      const rows = await trx
        .updateTable('blobs')
        .set({ deleting_since: sql<number | null>`deleting_since` })
        .where('digest', 'in', digests)
        .where('deleting_since', 'is not', null)
        .returning(['digest', 'size'])
        .execute();
      if (rows.length === 0) return [];
      const locked = rows.map((row) => row.digest);
      await deleteBytes(locked);
      await trx.deleteFrom('blobs').where('digest', 'in', locked).where('deleting_since', 'is not', null).execute();
      return rows.map((row) => ({ digest: row.digest, size: Number(row.size) }));
    });
  }

  async begin(input: GcRunInput, leaseMs: number): Promise<{ run: GcRun; started: boolean }> {
    return transaction(this.db, async (plain) => {
      const trx = plain as unknown as GcDb;
      const at = this.now();
      const taken = await trx
        .insertInto('gc_lease')
        .values({ name: LEASE, run_id: 0, expires_at: at + leaseMs })
        .onConflict((oc) =>
          oc
            .column('name')
            .doUpdateSet({ run_id: 0, expires_at: at + leaseMs })
            .where('gc_lease.expires_at', '<', at),
        )
        .returning('name')
        .executeTakeFirst();
      if (!taken) {
        const holder = await trx.selectFrom('gc_lease').select('run_id').where('name', '=', LEASE).executeTakeFirstOrThrow();
        const current = await this.findRun(trx, String(holder.run_id));
        if (!current) throw new Error(`the garbage collection lease names run ${String(holder.run_id)}, which does not exist`);
        return { run: current, started: false };
      }
      // Whoever held the lease before let it expire: its run died with its process.
      await trx
        .updateTable('gc_runs')
        .set({ status: 'failed', error: 'interrupted: its process ended or lost the database before finishing (the next run completes the work)', finished_at: at, updated_at: at })
        .where('status', '=', 'running')
        .execute();
      const inserted = await trx
        .insertInto('gc_runs')
        .values({ status: 'running', phase: 'starting', grace_ms: input.graceMs, project: input.project, actor: input.actor, started_at: at, updated_at: at })
        .returning('id')
        .executeTakeFirstOrThrow();
      await trx.updateTable('gc_lease').set({ run_id: inserted.id }).where('name', '=', LEASE).execute();
      return { run: (await this.findRun(trx, String(inserted.id)))!, started: true };
    });
  }

  async renew(runId: string, leaseMs: number): Promise<boolean> {
    const result = await this.gdb
      .updateTable('gc_lease')
      .set({ expires_at: this.now() + leaseMs })
      .where('name', '=', LEASE)
      .where('run_id', '=', runId)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async progress(runId: string, progress: GcProgress): Promise<void> {
    await this.gdb.updateTable('gc_runs').set({ ...progressColumns(progress), updated_at: this.now() }).where('id', '=', runId).where('status', '=', 'running').execute();
  }

  async finish(runId: string, status: Exclude<GcStatus, 'running'>, progress: GcProgress, error: string | null): Promise<GcRun | null> {
    return transaction(this.db, async (plain) => {
      const trx = plain as unknown as GcDb;
      const at = this.now();
      await trx
        .updateTable('gc_runs')
        .set({ ...progressColumns(progress), status, error, finished_at: at, updated_at: at })
        .where('id', '=', runId)
        .execute();
      await trx.deleteFrom('gc_lease').where('name', '=', LEASE).where('run_id', '=', runId).execute();
      await trx.deleteFrom('gc_runs').where('status', '<>', 'running').where('finished_at', '<', at - RUN_RETENTION_MS).execute();
      return this.findRun(trx, runId);
    });
  }

  async run(runId: string): Promise<GcRun | null> {
    if (!/^\d{1,18}$/.test(runId)) return null;
    return this.findRun(this.gdb, runId);
  }

  async runs(limit: number, before?: string): Promise<GcRun[]> {
    let query = this.gdb.selectFrom('gc_runs').selectAll();
    if (before !== undefined) query = query.where('id', '<', Number(before));
    const rows = await query.orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toRun);
  }

  async totals(): Promise<GcTotals> {
    const rows = await this.gdb
      .selectFrom('gc_runs')
      .select((eb) => [
        'status',
        eb.fn.countAll<number | string>().as('n'),
        eb.fn.sum<number | string>('blobs_freed').as('blobs'),
        eb.fn.sum<number | string>('bytes_freed').as('bytes'),
        eb.fn.sum<number | string>(sql`finished_at - started_at`).as('ms'),
      ])
      .where('status', '<>', 'running')
      .groupBy('status')
      .execute();
    const last = await this.gdb.selectFrom('gc_runs').select(['started_at', 'finished_at']).where('status', '<>', 'running').orderBy('id', 'desc').limit(1).executeTakeFirst();
    const totals: GcTotals = { runs: { succeeded: 0, failed: 0 }, blobsFreed: 0, bytesFreed: 0, seconds: 0, lastSeconds: last ? (Number(last.finished_at ?? last.started_at) - Number(last.started_at)) / 1000 : 0 };
    for (const row of rows) {
      if (row.status === 'succeeded' || row.status === 'failed') totals.runs[row.status] = Number(row.n);
      totals.blobsFreed += Number(row.blobs ?? 0);
      totals.bytesFreed += Number(row.bytes ?? 0);
      totals.seconds += Number(row.ms ?? 0) / 1000;
    }
    return totals;
  }

  private async findRun(db: GcDb, runId: string): Promise<GcRun | null> {
    const row = await db.selectFrom('gc_runs').selectAll().where('id', '=', Number(runId)).executeTakeFirst();
    return row ? toRun(row) : null;
  }
}

function progressColumns(p: GcProgress) {
  return {
    phase: p.phase,
    blobs_examined: p.blobsExamined,
    bytes_examined: p.bytesExamined,
    blobs_marked: p.blobsMarked,
    blobs_freed: p.blobsFreed,
    bytes_freed: p.bytesFreed,
    uploads_removed: p.uploadsRemoved,
  };
}

function toRun(row: Record<string, any>): GcRun {
  return {
    id: id(row.id),
    status: row.status as GcStatus,
    phase: row.phase as GcRun['phase'],
    graceMs: Number(row.grace_ms),
    project: row.project ?? null,
    actor: row.actor,
    startedAt: date(row.started_at),
    updatedAt: date(row.updated_at),
    finishedAt: dateOrNull(row.finished_at ?? null),
    blobsExamined: Number(row.blobs_examined),
    bytesExamined: Number(row.bytes_examined),
    blobsMarked: Number(row.blobs_marked),
    blobsFreed: Number(row.blobs_freed),
    bytesFreed: Number(row.bytes_freed),
    uploadsRemoved: Number(row.uploads_removed),
    error: row.error ?? null,
  };
}
