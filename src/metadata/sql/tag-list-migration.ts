import { sql, type Kysely, type Migration } from 'kysely';
import type { SqlDialect } from './schema.js';

/**
 * 0009_tag_list_version: `repositories.tags_version` counts changes to a repository's set of tag
 * names, so that a process can keep a repository's tag list in memory and check it with one
 * indexed read (see tag-list.ts). Triggers keep it exact for every writer, present and future:
 * a tag created or removed bumps it; a tag moved to another manifest (an upsert that updates
 * `manifest_id`) does not change the names and does not bump it.
 */
export function tagListVersionMigration(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .alterTable('repositories')
        .addColumn('tags_version', dialect === 'postgres' ? 'bigint' : 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      if (dialect === 'postgres') {
        await sql`
          create function stowage_bump_tags_version() returns trigger language plpgsql as $$
          begin
            if tg_op = 'INSERT' then
              update repositories set tags_version = tags_version + 1 where id = new.repository_id;
            else
              update repositories set tags_version = tags_version + 1 where id = old.repository_id;
              if tg_op = 'UPDATE' then
                update repositories set tags_version = tags_version + 1 where id = new.repository_id;
              end if;
            end if;
            return null;
          end $$`.execute(db);
        await sql`create trigger tags_version_bump after insert or delete or update of name, repository_id on tags
                  for each row execute function stowage_bump_tags_version()`.execute(db);
        return;
      }
      const bump = (row: 'new' | 'old') => sql.raw(`update repositories set tags_version = tags_version + 1 where id = ${row}.repository_id;`);
      await sql`create trigger tags_version_insert after insert on tags begin ${bump('new')} end`.execute(db);
      await sql`create trigger tags_version_delete after delete on tags begin ${bump('old')} end`.execute(db);
      await sql`create trigger tags_version_rename after update of name, repository_id on tags begin ${bump('old')} ${bump('new')} end`.execute(db);
    },
    async down(db: Kysely<any>): Promise<void> {
      if (dialect === 'postgres') {
        await sql`drop trigger tags_version_bump on tags`.execute(db);
        await sql`drop function stowage_bump_tags_version()`.execute(db);
      } else {
        for (const name of ['tags_version_insert', 'tags_version_delete', 'tags_version_rename']) {
          await sql`drop trigger ${sql.raw(name)}`.execute(db);
        }
      }
      await db.schema.alterTable('repositories').dropColumn('tags_version').execute();
    },
  };
}
