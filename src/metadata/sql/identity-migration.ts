import type { Kysely, Migration } from 'kysely';
import type { ColumnTypes } from './migrations.js';

/**
 * 0002_identity: users, projects and their members, robot accounts, personal access tokens,
 * refresh tokens, UI sessions, token signing keys, revocations, login failure counters, the audit
 * log and one-time bootstrap facts. Portable to PostgreSQL like 0001 (integer flags, int64
 * milliseconds, byte-ordered names).
 */
export function identityMigration(t: ColumnTypes): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('users')
        .addColumn('id', t.idType, t.id)
        .addColumn('name', t.name, (c) => c.notNull().unique())
        .addColumn('password_hash', 'text')
        .addColumn('provider', 'text', (c) => c.notNull().defaultTo('local'))
        .addColumn('email', 'text')
        .addColumn('admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addColumn('last_login_at', t.int64)
        .execute();

      await db.schema
        .createTable('projects')
        .addColumn('id', t.idType, t.id)
        .addColumn('name', t.name, (c) => c.notNull().unique())
        .addColumn('public', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('created_by', 'text')
        .execute();

      await db.schema
        .createTable('project_members')
        .addColumn('project_id', t.idType, (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('user_id', t.idType, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('project_members_pk', ['project_id', 'user_id'])
        .execute();
      await db.schema.createIndex('project_members_user_idx').on('project_members').column('user_id').execute();

      await db.schema
        .createTable('robots')
        .addColumn('id', t.idType, t.id)
        .addColumn('name', t.name, (c) => c.notNull().unique())
        .addColumn('project_id', t.idType, (c) => c.references('projects.id').onDelete('cascade'))
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('permissions', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('expires_at', t.int64)
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('last_used_at', t.int64)
        .execute();
      await db.schema.createIndex('robots_project_idx').on('robots').column('project_id').execute();

      await db.schema
        .createTable('personal_tokens')
        .addColumn('id', t.idType, t.id)
        .addColumn('user_id', t.idType, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('expires_at', t.int64)
        .addColumn('revoked_at', t.int64)
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('last_used_at', t.int64)
        .execute();
      await db.schema.createIndex('personal_tokens_user_idx').on('personal_tokens').column('user_id').execute();

      await db.schema
        .createTable('refresh_tokens')
        .addColumn('id', t.idType, t.id)
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('subject_kind', 'text', (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('personal_token_id', 'text')
        .addColumn('service', 'text', (c) => c.notNull())
        .addColumn('expires_at', t.int64, (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('last_used_at', t.int64)
        .execute();
      await db.schema.createIndex('refresh_tokens_subject_idx').on('refresh_tokens').columns(['subject_kind', 'subject_id']).execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id', t.idType, t.id)
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('user_id', t.idType, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('address', 'text')
        .addColumn('expires_at', t.int64, (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('last_seen_at', t.int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_user_idx').on('sessions').column('user_id').execute();

      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('private_jwk', 'text', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('retired_at', t.int64)
        .execute();

      await db.schema
        .createTable('revocations')
        .addColumn('subject', 'text', (c) => c.primaryKey())
        .addColumn('at', t.int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('revocations_at_idx').on('revocations').column('at').execute();

      await db.schema
        .createTable('login_failures')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('count', t.int64, (c) => c.notNull())
        .addColumn('window_start', t.int64, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('audit_log')
        .addColumn('id', t.idType, t.id)
        .addColumn('at', t.int64, (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('actor_kind', 'text', (c) => c.notNull())
        .addColumn('address', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('project', 'text')
        .addColumn('target', 'text')
        .addColumn('result', 'text', (c) => c.notNull())
        .addColumn('detail', 'text')
        .execute();
      await db.schema.createIndex('audit_log_at_idx').on('audit_log').column('at').execute();
      await db.schema.createIndex('audit_log_actor_idx').on('audit_log').columns(['actor', 'at']).execute();
      await db.schema.createIndex('audit_log_project_idx').on('audit_log').columns(['project', 'at']).execute();
      await db.schema.createIndex('audit_log_action_idx').on('audit_log').columns(['action', 'at']).execute();

      await db.schema
        .createTable('control_state')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('at', t.int64, (c) => c.notNull())
        .execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      for (const table of [
        'control_state',
        'audit_log',
        'login_failures',
        'revocations',
        'signing_keys',
        'sessions',
        'refresh_tokens',
        'personal_tokens',
        'robots',
        'project_members',
        'projects',
        'users',
      ]) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
