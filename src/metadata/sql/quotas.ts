import { sql } from 'kysely';
import { projectOf } from '../../auth/authorizer.js';
import { QuotaExceededError, type ProjectUsage, type QuotaLimits, type QuotaQueries } from '../housekeeping-store.js';
import { repositoryHasContent, underPrefix, type Clock, type Db } from './control/common.js';
import type { Id } from './schema.js';
import type { NewEvent } from '../events-store.js';
import { writeEvents } from './events.js';
import { statement } from './precompiled.js';

/**
 * Project quotas. Usage is computed from repository_blobs (unique digests over the project's
 * repositories), so nothing can drift: an unlink, a repository deletion or a garbage collection
 * lowers it the moment it commits, whoever does it.
 *
 * Exactness under concurrency: a link into a project that has a quota first locks the project's
 * quota row, then checks and links in the same transaction. Links into one project therefore
 * serialise (in PostgreSQL on that row; SQLite serialises all writers), so concurrent pushes that
 * together would exceed the quota cannot all pass: exactly those that fit succeed. Deletes take no
 * lock: they only lower usage, so at worst a push is refused against usage about to drop.
 *
 * Cost: counting a project's blobs on every link grows with the project (measured: +50% on a
 * small push at 1,200 blobs). So the row keeps `used_bound`, an upper bound of usage: every
 * admitted new blob adds its size under the lock, and only links add bytes (deletes lower the true
 * usage below the bound). A link that fits under the bound is admitted with one indexed lookup
 * (is the blob already in the project?); only one that would not fit recounts exactly, and the
 * refusal always names the exact usage. Projects without a quota pay one indexed lookup per link.
 */
export class SqlQuotas implements QuotaQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async get(project: string): Promise<QuotaLimits | null> {
    const row = await this.db
      .selectFrom('projects as p')
      .leftJoin('project_quotas as q', 'q.project_id', 'p.id')
      .select(['q.bytes_limit', 'q.repositories_limit'])
      .where('p.name', '=', project)
      .executeTakeFirst();
    if (!row) return null;
    return { bytes: numberOrNull(row.bytes_limit), repositories: numberOrNull(row.repositories_limit) };
  }

  async set(project: string, limits: QuotaLimits): Promise<boolean> {
    const found = await this.db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst();
    if (!found) return false;
    if (limits.bytes === null && limits.repositories === null) {
      await this.db.deleteFrom('project_quotas').where('project_id', '=', found.id).execute();
      return true;
    }
    await this.db
      .insertInto('project_quotas')
      // A new row's bound is "unknown" (the largest value): the first link recounts and sets it.
      // Counting here instead would miss a link that commits before this row exists.
      .values({ project_id: found.id, bytes_limit: limits.bytes, repositories_limit: limits.repositories, used_bound: Number.MAX_SAFE_INTEGER, updated_at: this.now() })
      .onConflict((oc) =>
        oc.column('project_id').doUpdateSet({
          bytes_limit: (eb) => eb.ref('excluded.bytes_limit'),
          repositories_limit: (eb) => eb.ref('excluded.repositories_limit'),
          updated_at: (eb) => eb.ref('excluded.updated_at'),
        }),
      )
      .execute();
    return true;
  }

  usage(project: string): Promise<ProjectUsage> {
    return projectUsage(this.db, project);
  }

  async precheck(repository: string, blob: { digest: string; size: number }): Promise<void> {
    const project = projectOf(repository);
    const row = (await byteQuota(this.db, { project })).rows[0];
    if (!row || row.bytes_limit === null) return;
    const limit = Number(row.bytes_limit);
    if (Number(row.used_bound) + blob.size <= limit || (await holds(this.db, project, blob.digest))) return;
    const used = (await projectUsage(this.db, project)).bytes;
    if (used + blob.size > limit) throw new QuotaExceededError(project, 'bytes', used, limit, blob.size);
  }
}

/**
 * Inside the transaction that links a blob into a repository (after the repository row is
 * locked): enforces the project's quota. Throws QuotaExceededError.
 */
export async function enforceQuotaOnLink(trx: Db, repository: string, repositoryId: Id, blob: { digest: string; size: number }): Promise<void> {
  const project = projectOf(repository);
  const limits = await lockQuota(trx, project);
  if (!limits) return;
  if (limits.repositories !== null) await checkRepositories(trx, project, repositoryId, limits.repositories);
  if (limits.bytes !== null) await checkBytes(trx, project, limits.bytes, limits.bound, blob, repository);
}

/**
 * Inside the transaction that stores a new manifest: a new repository must fit the repository
 * limit, and a project already over its byte quota (it was lowered) takes no new manifests.
 */
export async function enforceQuotaOnManifest(trx: Db, repository: string, repositoryId: Id): Promise<void> {
  const project = projectOf(repository);
  const limits = await lockQuota(trx, project);
  if (!limits) return;
  if (limits.repositories !== null) await checkRepositories(trx, project, repositoryId, limits.repositories);
  if (limits.bytes !== null && limits.bound > limits.bytes) {
    const used = (await projectUsage(trx, project)).bytes;
    if (used > limits.bytes) throw new QuotaExceededError(project, 'bytes', used, limits.bytes, 0);
    await setBound(trx, project, used);
  }
}

// Run on every blob upload and link: compiled once (see statement).
const byteQuota = statement(['project'], (db: Db, p) =>
  db
    .selectFrom('project_quotas as q')
    .innerJoin('projects as p', 'p.id', 'q.project_id')
    .select(['q.bytes_limit', 'q.used_bound'])
    .where('p.name', '=', p.project),
);
const lockQuotaRow = statement(['project'], (db: Db, p) =>
  db
    .updateTable('project_quotas')
    .set({ updated_at: sql<number>`updated_at` })
    .where('project_id', '=', (eb) => eb.selectFrom('projects').select('id').where('name', '=', p.project))
    .returning(['bytes_limit', 'repositories_limit', 'used_bound']),
);

/** Write-locks the project's quota row; undefined (and no lock) when the project has no quota. */
async function lockQuota(trx: Db, project: string): Promise<(QuotaLimits & { bound: number }) | undefined> {
  const row = (await lockQuotaRow(trx, { project })).rows[0];
  return row ? { bytes: numberOrNull(row.bytes_limit), repositories: numberOrNull(row.repositories_limit), bound: Number(row.used_bound) } : undefined;
}

async function checkBytes(trx: Db, project: string, limit: number, bound: number, blob: { digest: string; size: number }, repository: string): Promise<void> {
  if (await holds(trx, project, blob.digest)) return; // a blob the project already holds adds nothing
  const warnAt = limit * QUOTA_WARNING_SHARE;
  // The bound may overstate usage: a link that would cross the warning line or the limit by it
  // recounts exactly (rare: once per crossing), every other link costs no count.
  if (bound + blob.size <= limit && (bound >= warnAt || bound + blob.size < warnAt)) return setBound(trx, project, bound + blob.size);
  const used = (await projectUsage(trx, project)).bytes;
  if (used + blob.size > limit) throw new QuotaExceededError(project, 'bytes', used, limit, blob.size);
  await setBound(trx, project, used + blob.size);
  if (used < warnAt && used + blob.size >= warnAt) {
    // In the linking transaction: the warning exists exactly when the push that crossed the line does.
    await writeEvents(trx, [quotaWarning(project, repository, blob, used + blob.size, limit)], Date.now());
  }
}

/** A project's usage crossing this share of its byte quota is announced as a `quota.warning` event. */
export const QUOTA_WARNING_SHARE = 0.9;

function quotaWarning(project: string, repository: string, blob: { digest: string; size: number }, used: number, limit: number): NewEvent {
  return {
    type: 'quota.warning',
    actor: null,
    actorKind: 'system',
    address: null,
    project,
    repository,
    tag: null,
    digest: blob.digest,
    previousDigest: null,
    mediaType: null,
    size: blob.size,
    node: null,
    detail: { used, limit, percent: Math.round((used / limit) * 1000) / 10, warnAtPercent: QUOTA_WARNING_SHARE * 100 },
  };
}

/** Whether a repository of the project holds the blob (by the digest index). */
async function holds(db: Db, project: string, digest: string): Promise<boolean> {
  const row = await inProject(db.selectFrom('repository_blobs as rb').innerJoin('repositories as r', 'r.id', 'rb.repository_id').select('rb.digest').where('rb.digest', '=', digest), project)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

async function setBound(trx: Db, project: string, bytes: number): Promise<void> {
  await trx
    .updateTable('project_quotas')
    .set({ used_bound: bytes })
    .where('project_id', '=', (eb) => eb.selectFrom('projects').select('id').where('name', '=', project))
    .execute();
}

async function checkRepositories(db: Db, project: string, repositoryId: Id, limit: number): Promise<void> {
  if (await hasContent(db, repositoryId)) return;
  const used = await repositoriesWithContent(db, project);
  if (used + 1 > limit) throw new QuotaExceededError(project, 'repositories', used, limit, 1);
}

async function projectUsage(db: Db, project: string): Promise<ProjectUsage> {
  const digests = inProject(db.selectFrom('repository_blobs as rb').innerJoin('repositories as r', 'r.id', 'rb.repository_id').select('rb.digest'), project);
  const row = await db
    .selectFrom('blobs as b')
    .select((eb) => [sql<number | string | null>`coalesce(sum(b.size), 0)`.as('bytes'), eb.fn.countAll<number | string>().as('blobs')])
    .where('b.digest', 'in', digests)
    .executeTakeFirstOrThrow();
  return { bytes: Number(row.bytes ?? 0), blobs: Number(row.blobs), repositories: await repositoriesWithContent(db, project) };
}

async function repositoriesWithContent(db: Db, project: string): Promise<number> {
  const row = await inProject(db.selectFrom('repositories as r'), project)
    .where(repositoryHasContent)
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function hasContent(db: Db, repositoryId: Id): Promise<boolean> {
  // One after the other: inside a transaction both run on its one connection.
  const blob = await db.selectFrom('repository_blobs').select('digest').where('repository_id', '=', repositoryId).limit(1).executeTakeFirst();
  if (blob) return true;
  const manifest = await db.selectFrom('manifests').select('id').where('repository_id', '=', repositoryId).limit(1).executeTakeFirst();
  return manifest !== undefined;
}

/** Restricts a query over `repositories as r` to the project's repositories (`p` and `p/…`), by index. */
function inProject<Q extends { where: (...args: any[]) => any }>(query: Q, project: string): Q {
  const range = underPrefix(project);
  return query.where((eb: any) => eb.or([eb('r.name', '=', project), eb.and([eb('r.name', '>=', range.from), eb('r.name', '<', range.to)])])) as Q;
}

function numberOrNull(value: number | string | null | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}
