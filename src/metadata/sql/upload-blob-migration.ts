import type { Kysely, Migration } from 'kysely';

/**
 * 0008_upload_blob: an upload session whose bytes arrived in one request may be stored straight
 * at the blob's content address (one object store write instead of a staged upload, for S3);
 * `blob_digest` names that blob, so that any node can complete the session. Null otherwise.
 */
export function uploadBlobMigration(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('uploads').addColumn('blob_digest', 'text').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('uploads').dropColumn('blob_digest').execute();
    },
  };
}
