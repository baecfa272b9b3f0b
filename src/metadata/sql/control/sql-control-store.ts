import type { ControlStore } from '../../control-store.js';
import { SqlAudit } from './audit.js';
import { SqlCatalog } from './catalog.js';
import type { Clock, Db } from './common.js';
import { SqlPersonalTokens, SqlRefreshTokens, SqlRobots, SqlSessions } from './credentials.js';
import { SqlLoginFailures, SqlRevocations, SqlSigningKeys } from './keys.js';
import { SqlMembers, SqlProjects } from './projects.js';
import { SqlUsers } from './users.js';

/** ControlStore over Kysely, dialect-neutral like the registry metadata (same database). */
export class SqlControlStore implements ControlStore {
  readonly users;
  readonly projects;
  readonly members;
  readonly robots;
  readonly personalTokens;
  readonly refreshTokens;
  readonly sessions;
  readonly signingKeys;
  readonly revocations;
  readonly loginFailures;
  readonly audit;
  readonly catalog;

  /** `settle` waits out the hot lookups' caches after a deletion (see readCaching). */
  constructor(db: Db, now: Clock, settle: () => Promise<void>) {
    this.users = new SqlUsers(db, now);
    this.projects = new SqlProjects(db, now, settle);
    this.members = new SqlMembers(db, now);
    this.robots = new SqlRobots(db, now);
    this.personalTokens = new SqlPersonalTokens(db, now);
    this.refreshTokens = new SqlRefreshTokens(db, now);
    this.sessions = new SqlSessions(db, now);
    this.signingKeys = new SqlSigningKeys(db);
    this.revocations = new SqlRevocations(db, now);
    this.loginFailures = new SqlLoginFailures(db, now);
    this.audit = new SqlAudit(db);
    this.catalog = new SqlCatalog(db, settle);
  }
}
