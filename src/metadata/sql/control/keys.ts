import { sql } from 'kysely';
import type { LoginFailureQueries, RevocationQueries, SigningKeyQueries, SigningKeyRecord } from '../../control-store.js';
import { claimOnce, date, dateOrNull, type Clock, type Db } from './common.js';

export class SqlSigningKeys implements SigningKeyQueries {
  constructor(private readonly db: Db) {}

  async list(retiredAfter: Date): Promise<SigningKeyRecord[]> {
    const rows = await this.db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', retiredAfter.getTime())]))
      .orderBy('created_at', 'desc')
      .orderBy('kid')
      .execute();
    return rows.map((row) => ({
      kid: row.kid,
      privateJwk: row.private_jwk,
      publicJwk: row.public_jwk,
      createdAt: date(row.created_at),
      retiredAt: dateOrNull(row.retired_at),
    }));
  }

  async insertInitial(key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await claimOnce(trx, 'bootstrap.signing-key', key.kid, key.createdAt.getTime()))) return false;
      await insertKey(trx, key);
      return true;
    });
  }

  async rotate(key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('signing_keys').set({ retired_at: key.createdAt.getTime() }).where('retired_at', 'is', null).execute();
      await insertKey(trx, key);
    });
  }

  async purgeRetired(before: Date): Promise<number> {
    const result = await this.db.deleteFrom('signing_keys').where('retired_at', '<', before.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

async function insertKey(trx: Db, key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<void> {
  await trx
    .insertInto('signing_keys')
    .values({ kid: key.kid, private_jwk: key.privateJwk, public_jwk: key.publicJwk, created_at: key.createdAt.getTime(), retired_at: null })
    .execute();
}

export class SqlRevocations implements RevocationQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async revoke(subject: string): Promise<void> {
    await this.db
      .insertInto('revocations')
      .values({ subject, at: this.now() })
      .onConflict((oc) => oc.column('subject').doUpdateSet({ at: (eb) => eb.ref('excluded.at') }))
      .execute();
  }

  async since(since: Date): Promise<{ subject: string; at: Date }[]> {
    const rows = await this.db.selectFrom('revocations').selectAll().where('at', '>=', since.getTime()).execute();
    return rows.map((row) => ({ subject: row.subject, at: date(row.at) }));
  }

  async purge(before: Date): Promise<number> {
    const result = await this.db.deleteFrom('revocations').where('at', '<', before.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

export class SqlLoginFailures implements LoginFailureQueries {
  constructor(
    private readonly db: Db,
    private readonly now: Clock,
  ) {}

  async counts(keys: string[], windowStart: Date): Promise<Map<string, { count: number; windowStart: Date }>> {
    const counts = new Map<string, { count: number; windowStart: Date }>();
    if (keys.length === 0) return counts;
    const rows = await this.db
      .selectFrom('login_failures')
      .selectAll()
      .where('key', 'in', keys)
      .where('window_start', '>=', windowStart.getTime())
      .execute();
    for (const row of rows) counts.set(row.key, { count: Number(row.count), windowStart: date(row.window_start) });
    return counts;
  }

  async record(key: string, windowStart: Date): Promise<void> {
    const at = this.now();
    const stale = sql<boolean>`login_failures.window_start < ${windowStart.getTime()}`;
    await this.db
      .insertInto('login_failures')
      .values({ key, count: 1, window_start: at })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          count: sql<number>`case when ${stale} then 1 else login_failures.count + 1 end`,
          window_start: sql<number>`case when ${stale} then ${at} else login_failures.window_start end`,
        }),
      )
      .execute();
  }

  async clear(key: string): Promise<void> {
    await this.db.deleteFrom('login_failures').where('key', '=', key).execute();
  }

  async purge(before: Date): Promise<number> {
    const result = await this.db.deleteFrom('login_failures').where('window_start', '<', before.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
