import { sql, type Kysely } from 'kysely';
import type { Database, Id } from '../schema.js';

export type Db = Kysely<Database>;
export type Clock = () => number;

export function date(value: number | string): Date {
  return new Date(Number(value));
}

export function dateOrNull(value: number | string | null): Date | null {
  return value === null ? null : new Date(Number(value));
}

export function id(value: Id): string {
  return String(value);
}

/** A LIKE pattern that matches `text` anywhere, with the wildcards in it escaped (ESCAPE '\'). */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The byte-ordered half-open range of names under `prefix/` ('/' is 0x2F, '0' is 0x30), so that
 * a project's repositories are found by index without LIKE (whose `_` would be a wildcard).
 */
export function underPrefix(prefix: string): { from: string; to: string } {
  return { from: `${prefix}/`, to: `${prefix}0` };
}

/** Records a one-time fact; true only for the first caller (in any process). */
export async function claimOnce(trx: Db, name: string, value: string, at: number): Promise<boolean> {
  const row = await trx
    .insertInto('control_state')
    .values({ name, value, at })
    .onConflict((oc) => oc.column('name').doNothing())
    .returning('name')
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Whether the repository aliased `r` has content: a manifest or a linked blob. The catalog,
 * repository listings, project usage and project deletion all count repositories by it (a
 * repository row can outlive its content).
 */
export const repositoryHasContent = sql<boolean>`(exists (select 1 from manifests where manifests.repository_id = r.id) or exists (select 1 from repository_blobs where repository_blobs.repository_id = r.id))`;
