import type { Selectable } from 'kysely';
import type {
  NewRobot,
  OffsetPage,
  Paged,
  PersonalTokenQueries,
  PersonalTokenRecord,
  RefreshTokenQueries,
  RefreshTokenRecord,
  RobotQueries,
  RobotRecord,
  SessionQueries,
  SessionRecord,
} from '../../control-store.js';
import type { RobotTable } from '../control-schema.js';
import { date, dateOrNull, id, type Clock, type Db } from './common.js';

export class SqlRobots implements RobotQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async create(robot: NewRobot): Promise<RobotRecord | null> {
    let projectId: string | null = null;
    if (robot.project !== null) {
      const project = await this.db.selectFrom('projects').select('id').where('name', '=', robot.project).executeTakeFirst();
      if (!project) return null;
      projectId = id(project.id);
    }
    const row = await this.db
      .insertInto('robots')
      .values({
        name: robot.name,
        project_id: projectId,
        secret_hash: robot.secretHash,
        permissions: JSON.stringify(robot.permissions),
        description: robot.description,
        expires_at: robot.expiresAt?.getTime() ?? null,
        disabled: 0,
        created_at: this.now(),
        created_by: robot.createdBy,
        last_used_at: null,
      })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    return row ? this.getById(id(row.id)) : null;
  }

  async get(name: string): Promise<RobotRecord | null> {
    return (await this.getWithSecret(name))?.robot ?? null;
  }

  async getById(robotId: string): Promise<RobotRecord | null> {
    const row = await this.select().where('r.id', '=', robotId).executeTakeFirst();
    return row ? toRobot(row) : null;
  }

  async getWithSecret(name: string): Promise<{ robot: RobotRecord; secretHash: string } | null> {
    const row = await this.select().where('r.name', '=', name).executeTakeFirst();
    return row ? { robot: toRobot(row), secretHash: row.secret_hash } : null;
  }

  async list(filter: { project?: string | null }, page: OffsetPage): Promise<Paged<RobotRecord>> {
    let query = this.select();
    if (filter.project === null) query = query.where('r.project_id', 'is', null);
    else if (filter.project !== undefined) query = query.where('p.name', '=', filter.project);
    const [rows, count] = await Promise.all([
      query.orderBy('r.name').limit(page.limit).offset(page.offset).execute(),
      query.clearSelect().select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toRobot), total: Number(count.n) };
  }

  async delete(robotId: string): Promise<boolean> {
    const result = await this.db.deleteFrom('robots').where('id', '=', robotId).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async touch(robotId: string): Promise<void> {
    await this.db.updateTable('robots').set({ last_used_at: this.now() }).where('id', '=', robotId).execute();
  }

  private select() {
    return this.db.selectFrom('robots as r').leftJoin('projects as p', 'p.id', 'r.project_id').selectAll('r').select('p.name as project');
  }
}

function toRobot(row: Selectable<RobotTable> & { project: string | null }): RobotRecord {
  return {
    id: id(row.id),
    name: row.name,
    project: row.project,
    permissions: JSON.parse(row.permissions) as string[],
    description: row.description,
    expiresAt: dateOrNull(row.expires_at),
    disabled: Number(row.disabled) === 1,
    createdAt: date(row.created_at),
    createdBy: row.created_by,
    lastUsedAt: dateOrNull(row.last_used_at),
  };
}

export class SqlPersonalTokens implements PersonalTokenQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async create(token: { userId: string; name: string; tokenHash: string; scopes: string[]; expiresAt: Date | null }): Promise<PersonalTokenRecord> {
    const row = await this.db
      .insertInto('personal_tokens')
      .values({
        user_id: token.userId,
        name: token.name,
        token_hash: token.tokenHash,
        scopes: JSON.stringify(token.scopes),
        expires_at: token.expiresAt?.getTime() ?? null,
        revoked_at: null,
        created_at: this.now(),
        last_used_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const created = await this.getById(id(row.id));
    if (!created) throw new Error('personal access token vanished after insert');
    return created;
  }

  async findByHash(tokenHash: string): Promise<PersonalTokenRecord | null> {
    const row = await this.select().where('t.token_hash', '=', tokenHash).executeTakeFirst();
    return row ? toPersonalToken(row) : null;
  }

  async getById(tokenId: string): Promise<PersonalTokenRecord | null> {
    const row = await this.select().where('t.id', '=', tokenId).executeTakeFirst();
    return row ? toPersonalToken(row) : null;
  }

  async list(userId: string): Promise<PersonalTokenRecord[]> {
    const rows = await this.select().where('t.user_id', '=', userId).orderBy('t.created_at', 'desc').orderBy('t.id', 'desc').execute();
    return rows.map(toPersonalToken);
  }

  async revoke(tokenId: string): Promise<boolean> {
    const result = await this.db
      .updateTable('personal_tokens')
      .set({ revoked_at: this.now() })
      .where('id', '=', tokenId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async touch(tokenId: string): Promise<void> {
    await this.db.updateTable('personal_tokens').set({ last_used_at: this.now() }).where('id', '=', tokenId).execute();
  }

  private select() {
    return this.db
      .selectFrom('personal_tokens as t')
      .innerJoin('users as u', 'u.id', 't.user_id')
      .select(['t.id', 't.user_id', 'u.name as user_name', 't.name', 't.scopes', 't.expires_at', 't.revoked_at', 't.created_at', 't.last_used_at']);
  }
}

function toPersonalToken(row: {
  id: number | string;
  user_id: number | string;
  user_name: string;
  name: string;
  scopes: string;
  expires_at: number | string | null;
  revoked_at: number | string | null;
  created_at: number | string;
  last_used_at: number | string | null;
}): PersonalTokenRecord {
  return {
    id: id(row.id),
    userId: id(row.user_id),
    userName: row.user_name,
    name: row.name,
    scopes: JSON.parse(row.scopes) as string[],
    expiresAt: dateOrNull(row.expires_at),
    revokedAt: dateOrNull(row.revoked_at),
    createdAt: date(row.created_at),
    lastUsedAt: dateOrNull(row.last_used_at),
  };
}

export class SqlRefreshTokens implements RefreshTokenQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async create(token: Omit<RefreshTokenRecord, 'id' | 'createdAt'> & { tokenHash: string }): Promise<RefreshTokenRecord> {
    const at = this.now();
    const row = await this.db
      .insertInto('refresh_tokens')
      .values({
        token_hash: token.tokenHash,
        subject_kind: token.subjectKind,
        subject_id: token.subjectId,
        personal_token_id: token.personalTokenId,
        service: token.service,
        expires_at: token.expiresAt.getTime(),
        created_at: at,
        last_used_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { ...token, id: id(row.id), createdAt: new Date(at) };
  }

  async use(tokenHash: string): Promise<RefreshTokenRecord | null> {
    const at = this.now();
    const row = await this.db
      .updateTable('refresh_tokens')
      .set({ last_used_at: at })
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', at)
      .returningAll()
      .executeTakeFirst();
    if (!row) return null;
    return {
      id: id(row.id),
      subjectKind: row.subject_kind as 'user' | 'robot',
      subjectId: row.subject_id,
      personalTokenId: row.personal_token_id,
      service: row.service,
      expiresAt: date(row.expires_at),
      createdAt: date(row.created_at),
    };
  }

  async deleteForSubject(kind: 'user' | 'robot', subjectId: string): Promise<number> {
    const result = await this.db.deleteFrom('refresh_tokens').where('subject_kind', '=', kind).where('subject_id', '=', subjectId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async purgeExpired(): Promise<number> {
    const result = await this.db.deleteFrom('refresh_tokens').where('expires_at', '<=', this.now()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

export class SqlSessions implements SessionQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async create(session: { tokenHash: string; userId: string; csrfToken: string; address: string | null; expiresAt: Date }): Promise<SessionRecord> {
    const at = this.now();
    const row = await this.db
      .insertInto('sessions')
      .values({
        token_hash: session.tokenHash,
        user_id: session.userId,
        csrf_token: session.csrfToken,
        address: session.address,
        expires_at: session.expiresAt.getTime(),
        created_at: at,
        last_seen_at: at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: id(row.id), userId: session.userId, csrfToken: session.csrfToken, expiresAt: session.expiresAt };
  }

  async use(tokenHash: string): Promise<SessionRecord | null> {
    const at = this.now();
    const row = await this.db
      .updateTable('sessions')
      .set({ last_seen_at: at })
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', at)
      .returning(['id', 'user_id', 'csrf_token', 'expires_at'])
      .executeTakeFirst();
    return row ? { id: id(row.id), userId: id(row.user_id), csrfToken: row.csrf_token, expiresAt: date(row.expires_at) } : null;
  }

  async delete(tokenHash: string): Promise<boolean> {
    const result = await this.db.deleteFrom('sessions').where('token_hash', '=', tokenHash).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async deleteForUser(userId: string): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async purgeExpired(): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('expires_at', '<=', this.now()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
