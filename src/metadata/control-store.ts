import type { NewEvent, WriteContext } from './events-store.js';

/**
 * Identity and access-control metadata: users, projects, members, robot accounts, tokens,
 * sessions, signing keys, revocations, login failure counters and the audit log. One narrow
 * query interface per aggregate; ids are opaque strings. Secrets never reach this layer: only
 * their hashes do.
 */
export interface ControlStore {
  readonly users: UserQueries;
  readonly projects: ProjectQueries;
  readonly members: MemberQueries;
  readonly robots: RobotQueries;
  readonly personalTokens: PersonalTokenQueries;
  readonly refreshTokens: RefreshTokenQueries;
  readonly sessions: SessionQueries;
  readonly signingKeys: SigningKeyQueries;
  readonly revocations: RevocationQueries;
  readonly loginFailures: LoginFailureQueries;
  readonly audit: AuditQueries;
  readonly catalog: CatalogQueries;
}

/** An offset page with the total number of matches. */
export interface OffsetPage {
  offset: number;
  limit: number;
}

export interface Paged<T> {
  items: T[];
  total: number;
}

// ---------------------------------------------------------------------------------------------

export interface UserRecord {
  id: string;
  name: string;
  email: string | null;
  admin: boolean;
  disabled: boolean;
  /** `local` or the name of an external identity provider. */
  provider: string;
  createdAt: Date;
  updatedAt: Date;
  lastLoginAt: Date | null;
}

export interface NewUser {
  name: string;
  passwordHash: string | null;
  email?: string | null;
  admin?: boolean;
  provider?: string;
}

export interface UserChanges {
  email?: string | null;
  admin?: boolean;
  disabled?: boolean;
  passwordHash?: string;
}

export interface UserQueries {
  /** Null when the name is taken. */
  create(user: NewUser): Promise<UserRecord | null>;
  /**
   * Creates the first-start admin, once per database: null when a first start already happened
   * (in this or any other process or node), even if that admin was renamed or deleted since.
   */
  createInitialAdmin(user: NewUser): Promise<UserRecord | null>;
  get(name: string): Promise<UserRecord | null>;
  getById(id: string): Promise<UserRecord | null>;
  /** The user with the stored password hash, for verification. */
  getWithPassword(name: string): Promise<{ user: UserRecord; passwordHash: string | null } | null>;
  list(filter: { query?: string; disabled?: boolean }, page: OffsetPage): Promise<Paged<UserRecord>>;
  update(name: string, changes: UserChanges): Promise<UserRecord | null>;
  delete(name: string): Promise<boolean>;
  touchLogin(id: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------

export interface ProjectRecord {
  id: string;
  name: string;
  public: boolean;
  createdAt: Date;
  createdBy: string | null;
}

export type ProjectVisibility =
  | { all: true }
  /** Public projects and those the user is a member of; none but public when userId is null. */
  | { all?: false; userId: string | null };

export interface ProjectQueries {
  /**
   * Creates a project and, when `ownerId` is given, makes that user its owner, in one
   * transaction. Null when the name is taken.
   */
  create(project: { name: string; public: boolean; createdBy: string | null }, ownerId?: string, events?: NewEvent[]): Promise<ProjectRecord | null>;
  /** Creates the project unless it exists (as `create`); `created` tells which. */
  ensure(project: { name: string; public: boolean; createdBy: string | null }, ownerId?: string, events?: NewEvent[]): Promise<{ project: ProjectRecord; created: boolean }>;
  get(name: string): Promise<ProjectRecord | null>;
  list(filter: { query?: string; visibleTo: ProjectVisibility }, page: OffsetPage): Promise<Paged<ProjectRecord>>;
  update(name: string, changes: { public?: boolean }, events?: NewEvent[]): Promise<ProjectRecord | null>;
  /**
   * Deletes a project with its members and robots. Without `force`, only when no repository of
   * the project has content; with it, the project's repositories go too (their manifests, tags
   * and blob links; the bytes stay until garbage collection).
   */
  delete(name: string, force: boolean, context?: WriteContext, events?: NewEvent[]): Promise<'deleted' | 'not-found' | 'not-empty'>;
}

// Methods that change projects and members take the events that describe the change (`events`)
// and write them to the outbox in the change's own transaction, only when it changed something.


// ---------------------------------------------------------------------------------------------

export type Role = 'owner' | 'maintainer' | 'developer' | 'reader';

export interface MemberRecord {
  userId: string;
  userName: string;
  role: Role;
  createdAt: Date;
}

export interface MemberQueries {
  /** Adds a member or changes the role; false when the project or the user does not exist. */
  set(project: string, user: string, role: Role, events?: NewEvent[]): Promise<boolean>;
  remove(project: string, user: string, events?: NewEvent[]): Promise<boolean>;
  list(project: string): Promise<MemberRecord[]>;
  role(projectId: string, userId: string): Promise<Role | null>;
  /** Every project the user is a member of, with the role. */
  projectsOf(userId: string): Promise<{ project: string; role: Role }[]>;
}

// ---------------------------------------------------------------------------------------------

export interface RobotRecord {
  id: string;
  name: string;
  /** Null for a system robot. */
  project: string | null;
  permissions: string[];
  description: string | null;
  expiresAt: Date | null;
  disabled: boolean;
  createdAt: Date;
  createdBy: string | null;
  lastUsedAt: Date | null;
}

export interface NewRobot {
  name: string;
  project: string | null;
  secretHash: string;
  permissions: string[];
  description: string | null;
  expiresAt: Date | null;
  createdBy: string | null;
}

export interface RobotQueries {
  /** Null when the name is taken or the project does not exist. */
  create(robot: NewRobot): Promise<RobotRecord | null>;
  get(name: string): Promise<RobotRecord | null>;
  getById(id: string): Promise<RobotRecord | null>;
  getWithSecret(name: string): Promise<{ robot: RobotRecord; secretHash: string } | null>;
  /** Robots of a project, or system robots when `project` is null, or all when undefined. */
  list(filter: { project?: string | null }, page: OffsetPage): Promise<Paged<RobotRecord>>;
  delete(id: string): Promise<boolean>;
  touch(id: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------

export interface PersonalTokenRecord {
  id: string;
  userId: string;
  userName: string;
  name: string;
  scopes: string[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
  lastUsedAt: Date | null;
}

export interface PersonalTokenQueries {
  create(token: { userId: string; name: string; tokenHash: string; scopes: string[]; expiresAt: Date | null }): Promise<PersonalTokenRecord>;
  findByHash(tokenHash: string): Promise<PersonalTokenRecord | null>;
  getById(id: string): Promise<PersonalTokenRecord | null>;
  list(userId: string): Promise<PersonalTokenRecord[]>;
  /** False when it does not exist or was revoked already. */
  revoke(id: string): Promise<boolean>;
  touch(id: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------

export interface RefreshTokenRecord {
  id: string;
  subjectKind: 'user' | 'robot';
  subjectId: string;
  personalTokenId: string | null;
  service: string;
  expiresAt: Date;
  createdAt: Date;
}

export interface RefreshTokenQueries {
  create(token: Omit<RefreshTokenRecord, 'id' | 'createdAt'> & { tokenHash: string }): Promise<RefreshTokenRecord>;
  /** An unexpired refresh token (its last use is recorded). */
  use(tokenHash: string): Promise<RefreshTokenRecord | null>;
  deleteForSubject(kind: 'user' | 'robot', id: string): Promise<number>;
  purgeExpired(): Promise<number>;
}

// ---------------------------------------------------------------------------------------------

export interface SessionRecord {
  id: string;
  userId: string;
  csrfToken: string;
  expiresAt: Date;
}

export interface SessionQueries {
  create(session: { tokenHash: string; userId: string; csrfToken: string; address: string | null; expiresAt: Date }): Promise<SessionRecord>;
  /** An unexpired session (its last use is recorded). */
  use(tokenHash: string): Promise<SessionRecord | null>;
  delete(tokenHash: string): Promise<boolean>;
  deleteForUser(userId: string): Promise<number>;
  purgeExpired(): Promise<number>;
}

// ---------------------------------------------------------------------------------------------

export interface SigningKeyRecord {
  kid: string;
  privateJwk: string;
  publicJwk: string;
  createdAt: Date;
  retiredAt: Date | null;
}

export interface SigningKeyQueries {
  /** Keys not retired, or retired after `retiredAfter`, newest first. */
  list(retiredAfter: Date): Promise<SigningKeyRecord[]>;
  /** Stores the first key, once per database; false when another process stored one first. */
  insertInitial(key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<boolean>;
  /** Retires every active key and stores `key` as the active one, in one transaction. */
  rotate(key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<void>;
  purgeRetired(before: Date): Promise<number>;
}

// ---------------------------------------------------------------------------------------------

export interface RevocationQueries {
  /** Voids the tokens of `subject` issued up to now. */
  revoke(subject: string): Promise<void>;
  /** Revocations recorded at or after `since`. */
  since(since: Date): Promise<{ subject: string; at: Date }[]>;
  purge(before: Date): Promise<number>;
}

// ---------------------------------------------------------------------------------------------

export interface LoginFailureQueries {
  /** Failures counted for each key in the window that starts at or after `windowStart`. */
  counts(keys: string[], windowStart: Date): Promise<Map<string, { count: number; windowStart: Date }>>;
  /** Counts a failure; a window older than `windowStart` starts over. */
  record(key: string, windowStart: Date): Promise<void>;
  clear(key: string): Promise<void>;
  purge(before: Date): Promise<number>;
}

// ---------------------------------------------------------------------------------------------

export type AuditResult = 'success' | 'failure' | 'denied';

export interface AuditEntry {
  at: Date;
  actor: string;
  actorKind: string;
  address: string | null;
  action: string;
  project: string | null;
  target: string | null;
  result: AuditResult;
  detail: Record<string, unknown> | null;
  /** How many identical events within one batch this entry stands for (1 when absent). */
  count?: number;
}

/** An entry as read back: with its id and its count. */
export type StoredAuditEntry = AuditEntry & { id: string; count: number };

export interface AuditFilter {
  actor?: string;
  project?: string;
  action?: string;
  result?: AuditResult;
  from?: Date;
  to?: Date;
}

export interface AuditQueries {
  append(entries: AuditEntry[]): Promise<void>;
  /** Newest first. */
  query(filter: AuditFilter, page: OffsetPage): Promise<Paged<StoredAuditEntry>>;
  purge(before: Date): Promise<number>;
}

// ---------------------------------------------------------------------------------------------

export interface RepositorySummary {
  name: string;
  tags: number;
  manifests: number;
  /** Last push (manifest or tag move). */
  updatedAt: Date | null;
}

export interface TagSummary {
  name: string;
  digest: string;
  mediaType: string;
  /** The manifest and the blobs it references. */
  size: number;
  pushedAt: Date;
}

/** Repository browsing and removal for the management API. */
export interface CatalogQueries {
  /**
   * Names of repositories with content, in byte order, after `after`, containing `query`,
   * restricted to the given projects (a project holds `p` and `p/...`) unless undefined.
   */
  names(filter: { query?: string; projects?: string[] }, after: string | undefined, limit: number): Promise<string[]>;
  summaries(names: string[]): Promise<RepositorySummary[]>;
  tags(repository: string, page: OffsetPage): Promise<Paged<TagSummary>>;
  /**
   * Removes a repository with its manifests, tags, blob links and upload sessions; their
   * tag.deleted and artifact.deleted events (by `context`) commit with the removal.
   */
  deleteRepository(name: string, context?: WriteContext): Promise<boolean>;
}
