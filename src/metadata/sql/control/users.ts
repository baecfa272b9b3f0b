import { sql, type Selectable } from 'kysely';
import type { NewUser, OffsetPage, Paged, UserChanges, UserQueries, UserRecord } from '../../control-store.js';
import type { UserTable } from '../control-schema.js';
import { claimOnce, containsPattern, date, dateOrNull, id, type Clock, type Db } from './common.js';

export class SqlUsers implements UserQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async create(user: NewUser): Promise<UserRecord | null> {
    return insertUser(this.db, user, this.now());
  }

  async createInitialAdmin(user: NewUser): Promise<UserRecord | null> {
    return this.db.transaction().execute(async (trx) => {
      const at = this.now();
      if (!(await claimOnce(trx, 'bootstrap.admin', user.name, at))) return null;
      return insertUser(trx, { ...user, admin: true }, at);
    });
  }

  async get(name: string): Promise<UserRecord | null> {
    const row = await this.db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toUser(row) : null;
  }

  async getById(userId: string): Promise<UserRecord | null> {
    const row = await this.db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    return row ? toUser(row) : null;
  }

  async getWithPassword(name: string): Promise<{ user: UserRecord; passwordHash: string | null } | null> {
    const row = await this.db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? { user: toUser(row), passwordHash: row.password_hash } : null;
  }

  async list(filter: { query?: string; disabled?: boolean }, page: OffsetPage): Promise<Paged<UserRecord>> {
    let query = this.db.selectFrom('users');
    if (filter.query) query = query.where(sql<boolean>`name like ${containsPattern(filter.query)} escape '\\'`);
    if (filter.disabled !== undefined) query = query.where('disabled', '=', filter.disabled ? 1 : 0);
    const [rows, count] = await Promise.all([
      query.selectAll().orderBy('name').limit(page.limit).offset(page.offset).execute(),
      query.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toUser), total: Number(count.n) };
  }

  async update(name: string, changes: UserChanges): Promise<UserRecord | null> {
    const values: Partial<Record<keyof UserTable, unknown>> = { updated_at: this.now() };
    if (changes.email !== undefined) values.email = changes.email;
    if (changes.admin !== undefined) values.admin = changes.admin ? 1 : 0;
    if (changes.disabled !== undefined) values.disabled = changes.disabled ? 1 : 0;
    if (changes.passwordHash !== undefined) values.password_hash = changes.passwordHash;
    const row = await this.db
      .updateTable('users')
      .set(values as never)
      .where('name', '=', name)
      .returningAll()
      .executeTakeFirst();
    return row ? toUser(row) : null;
  }

  async delete(name: string): Promise<boolean> {
    const result = await this.db.deleteFrom('users').where('name', '=', name).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async touchLogin(userId: string): Promise<void> {
    await this.db.updateTable('users').set({ last_login_at: this.now() }).where('id', '=', userId).execute();
  }
}

async function insertUser(db: Db, user: NewUser, at: number): Promise<UserRecord | null> {
  const row = await db
    .insertInto('users')
    .values({
      name: user.name,
      password_hash: user.passwordHash,
      provider: user.provider ?? 'local',
      email: user.email ?? null,
      admin: user.admin ? 1 : 0,
      disabled: 0,
      created_at: at,
      updated_at: at,
      last_login_at: null,
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
  return row ? toUser(row) : null;
}

function toUser(row: Selectable<UserTable>): UserRecord {
  return {
    id: id(row.id),
    name: row.name,
    email: row.email,
    admin: Number(row.admin) === 1,
    disabled: Number(row.disabled) === 1,
    provider: row.provider,
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
    lastLoginAt: dateOrNull(row.last_login_at),
  };
}
