import { sql, type Selectable } from 'kysely';
import type {
  MemberQueries,
  MemberRecord,
  OffsetPage,
  Paged,
  ProjectQueries,
  ProjectRecord,
  ProjectVisibility,
  Role,
} from '../../control-store.js';
import type { ProjectTable } from '../control-schema.js';
import type { NewEvent, WriteContext } from '../../events-store.js';
import { writeEvents, writeRepositoryRemovalEvents } from '../events.js';
import { containsPattern, date, id, repositoryHasContent, underPrefix, type Clock, type Db } from './common.js';

type NewProject = { name: string; public: boolean; createdBy: string | null };

export class SqlProjects implements ProjectQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
    /** Waits out the hot lookups' caches after a deletion (see readCaching). */
    private readonly settle: () => Promise<void>,
  ) {}

  async create(project: NewProject, ownerId?: string, events: NewEvent[] = []): Promise<ProjectRecord | null> {
    return this.db.transaction().execute(async (trx) => {
      const created = await insertProject(trx, project, ownerId, this.now());
      if (created) await writeEvents(trx, events, this.now());
      return created;
    });
  }

  async ensure(project: NewProject, ownerId?: string, events: NewEvent[] = []): Promise<{ project: ProjectRecord; created: boolean }> {
    const created = await this.create(project, ownerId, events);
    if (created) return { project: created, created: true };
    const existing = await this.get(project.name);
    if (!existing) throw new Error(`project ${project.name} was deleted while it was being created`);
    return { project: existing, created: false };
  }

  async get(name: string): Promise<ProjectRecord | null> {
    const row = await this.db.selectFrom('projects').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toProject(row) : null;
  }

  async list(filter: { query?: string; visibleTo: ProjectVisibility }, page: OffsetPage): Promise<Paged<ProjectRecord>> {
    let query = this.db.selectFrom('projects as p');
    if (filter.query) query = query.where(sql<boolean>`p.name like ${containsPattern(filter.query)} escape '\\'`);
    const visible = filter.visibleTo;
    if (!visible.all) {
      const userId = visible.userId;
      query = query.where((eb) =>
        userId === null
          ? eb('p.public', '=', 1)
          : eb.or([
              eb('p.public', '=', 1),
              eb.exists(
                eb.selectFrom('project_members as m').select('m.user_id').whereRef('m.project_id', '=', 'p.id').where('m.user_id', '=', userId),
              ),
            ]),
      );
    }
    const [rows, count] = await Promise.all([
      query.selectAll('p').orderBy('p.name').limit(page.limit).offset(page.offset).execute(),
      query.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toProject), total: Number(count.n) };
  }

  async update(name: string, changes: { public?: boolean }, events: NewEvent[] = []): Promise<ProjectRecord | null> {
    if (changes.public === undefined) return this.get(name);
    const isPublic = changes.public;
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .updateTable('projects')
        .set({ public: isPublic ? 1 : 0 })
        .where('name', '=', name)
        .returningAll()
        .executeTakeFirst();
      if (!row) return null;
      await writeEvents(trx, events, this.now());
      return toProject(row);
    });
  }

  async delete(name: string, force: boolean, context?: WriteContext, events: NewEvent[] = []): Promise<'deleted' | 'not-found' | 'not-empty'> {
    const outcome = await this.db.transaction().execute(async (trx): Promise<'deleted' | 'not-found' | 'not-empty'> => {
      // Writing the row first takes the write lock (SQLite) or the row lock (PostgreSQL).
      const locked = await trx
        .updateTable('projects')
        .set((eb) => ({ name: eb.ref('name') }))
        .where('name', '=', name)
        .returning('id')
        .executeTakeFirst();
      if (!locked) return 'not-found';
      const range = underPrefix(name);
      const inProject = (column: string) =>
        sql<boolean>`(${sql.ref(column)} = ${name} or (${sql.ref(column)} >= ${range.from} and ${sql.ref(column)} < ${range.to}))`;
      if (!force) {
        const content = await trx
          .selectFrom('repositories as r')
          .select('r.id')
          .where(inProject('r.name'))
          .where(repositoryHasContent)
          .limit(1)
          .executeTakeFirst();
        if (content) return 'not-empty';
      }
      const repositories = await trx.selectFrom('repositories').select('name').where(inProject('name')).orderBy('name').execute();
      await writeRepositoryRemovalEvents(trx, repositories.map((r) => r.name), context, Date.now());
      // Manifests, tags, their history and blob links go with the repositories (ON DELETE CASCADE).
      await trx.deleteFrom('repositories').where(inProject('name')).execute();
      await trx.deleteFrom('uploads').where(inProject('repository')).execute();
      await trx.deleteFrom('projects').where('id', '=', locked.id).execute();
      await writeEvents(trx, events, this.now());
      return 'deleted';
    });
    if (outcome === 'deleted') await this.settle();
    return outcome;
  }
}

export class SqlMembers implements MemberQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async set(project: string, user: string, role: Role, events: NewEvent[] = []): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const ids = await trx
        .selectFrom('projects as p')
        .innerJoin('users as u', (join) => join.on('u.name', '=', user))
        .select(['p.id as projectId', 'u.id as userId'])
        .where('p.name', '=', project)
        .executeTakeFirst();
      if (!ids) return false;
      await trx
        .insertInto('project_members')
        .values({ project_id: ids.projectId, user_id: ids.userId, role, created_at: this.now() })
        .onConflict((oc) => oc.columns(['project_id', 'user_id']).doUpdateSet({ role: (eb) => eb.ref('excluded.role') }))
        .execute();
      await writeEvents(trx, events, this.now());
      return true;
    });
  }

  async remove(project: string, user: string, events: NewEvent[] = []): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .deleteFrom('project_members')
        .where('project_id', '=', (eb) => eb.selectFrom('projects').select('id').where('name', '=', project))
        .where('user_id', '=', (eb) => eb.selectFrom('users').select('id').where('name', '=', user))
        .executeTakeFirst();
      if (result.numDeletedRows === 0n) return false;
      await writeEvents(trx, events, this.now());
      return true;
    });
  }

  async list(project: string): Promise<MemberRecord[]> {
    const rows = await this.db
      .selectFrom('project_members as m')
      .innerJoin('projects as p', 'p.id', 'm.project_id')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select(['u.id', 'u.name', 'm.role', 'm.created_at'])
      .where('p.name', '=', project)
      .orderBy('u.name')
      .execute();
    return rows.map((row) => ({ userId: id(row.id), userName: row.name, role: row.role as Role, createdAt: date(row.created_at) }));
  }

  async role(projectId: string, userId: string): Promise<Role | null> {
    const row = await this.db
      .selectFrom('project_members')
      .select('role')
      .where('project_id', '=', projectId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row ? (row.role as Role) : null;
  }

  async projectsOf(userId: string): Promise<{ project: string; role: Role }[]> {
    const rows = await this.db
      .selectFrom('project_members as m')
      .innerJoin('projects as p', 'p.id', 'm.project_id')
      .select(['p.name', 'm.role'])
      .where('m.user_id', '=', userId)
      .orderBy('p.name')
      .execute();
    return rows.map((row) => ({ project: row.name, role: row.role as Role }));
  }
}

async function insertProject(trx: Db, project: NewProject, ownerId: string | undefined, at: number): Promise<ProjectRecord | null> {
  const row = await trx
    .insertInto('projects')
    .values({ name: project.name, public: project.public ? 1 : 0, created_at: at, created_by: project.createdBy })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (!row) return null;
  if (ownerId !== undefined) {
    await trx.insertInto('project_members').values({ project_id: row.id, user_id: ownerId, role: 'owner', created_at: at }).execute();
  }
  return toProject(row);
}

function toProject(row: Selectable<ProjectTable>): ProjectRecord {
  return { id: id(row.id), name: row.name, public: Number(row.public) === 1, createdAt: date(row.created_at), createdBy: row.created_by };
}
