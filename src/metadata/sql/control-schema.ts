import type { Generated } from 'kysely';
import type { Id, Int64 } from './schema.js';

/** 0 or 1: portable booleans (SQLite has none; PostgreSQL's `boolean` would differ in type). */
export type Flag = number;

export interface UserTable {
  id: Generated<Id>;
  name: string;
  /** argon2id PHC string; null for users of an external identity provider. */
  password_hash: string | null;
  /** `local`, or the identity provider that vouches for the user. */
  provider: string;
  email: string | null;
  admin: Flag;
  disabled: Flag;
  created_at: Int64;
  updated_at: Int64;
  last_login_at: Int64 | null;
}

export interface ProjectTable {
  id: Generated<Id>;
  name: string;
  public: Flag;
  created_at: Int64;
  created_by: string | null;
}

export interface ProjectMemberTable {
  project_id: Id;
  user_id: Id;
  role: string;
  created_at: Int64;
}

export interface RobotTable {
  id: Generated<Id>;
  /** `robot$<name>` (system) or `robot$<project>+<name>`. */
  name: string;
  project_id: Id | null;
  /** SHA-256 (hex) of the secret: secrets are 256-bit random, so a slow hash adds nothing. */
  secret_hash: string;
  /** JSON array of permission strings (`repository:<pattern>:<actions>`). */
  permissions: string;
  description: string | null;
  expires_at: Int64 | null;
  disabled: Flag;
  created_at: Int64;
  created_by: string | null;
  last_used_at: Int64 | null;
}

export interface PersonalTokenTable {
  id: Generated<Id>;
  user_id: Id;
  name: string;
  token_hash: string;
  /** JSON array of scope strings. */
  scopes: string;
  expires_at: Int64 | null;
  revoked_at: Int64 | null;
  created_at: Int64;
  last_used_at: Int64 | null;
}

export interface RefreshTokenTable {
  id: Generated<Id>;
  token_hash: string;
  subject_kind: string;
  subject_id: string;
  /** The personal access token the subject logged in with, whose limits the refresh keeps. */
  personal_token_id: string | null;
  service: string;
  expires_at: Int64;
  created_at: Int64;
  last_used_at: Int64 | null;
}

export interface SessionTable {
  id: Generated<Id>;
  token_hash: string;
  user_id: Id;
  csrf_token: string;
  address: string | null;
  expires_at: Int64;
  created_at: Int64;
  last_seen_at: Int64;
}

export interface SigningKeyTable {
  kid: string;
  /** Private JWK (JSON). Protect the database like the keys it holds. */
  private_jwk: string;
  public_jwk: string;
  created_at: Int64;
  retired_at: Int64 | null;
}

export interface RevocationTable {
  /** `user:<id>`, `robot:<id>` or `pat:<id>`: tokens of that subject issued before `at` are void. */
  subject: string;
  at: Int64;
}

export interface LoginFailureTable {
  /** `user:<name>` or `address:<ip>`. */
  key: string;
  count: Int64;
  window_start: Int64;
}

export interface AuditTable {
  id: Generated<Id>;
  at: Int64;
  actor: string;
  actor_kind: string;
  address: string | null;
  action: string;
  project: string | null;
  target: string | null;
  result: string;
  /** JSON object or null. */
  detail: string | null;
  /** How many identical events the row stands for (0013_audit_occurrences). */
  occurrences: Generated<number>;
}

/** One-time facts (first-start bootstrap), written with INSERT … ON CONFLICT DO NOTHING. */
export interface ControlStateTable {
  name: string;
  value: string;
  at: Int64;
}

export interface ControlDatabase {
  users: UserTable;
  projects: ProjectTable;
  project_members: ProjectMemberTable;
  robots: RobotTable;
  personal_tokens: PersonalTokenTable;
  refresh_tokens: RefreshTokenTable;
  sessions: SessionTable;
  signing_keys: SigningKeyTable;
  revocations: RevocationTable;
  login_failures: LoginFailureTable;
  audit_log: AuditTable;
  control_state: ControlStateTable;
}
