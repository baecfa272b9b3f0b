import type { Logger } from 'pino';
import type { Actor } from '../auth/principal.js';
import type { AuthService } from '../auth/service.js';
import type { ResolvedConfig } from '../config/load.js';
import type { AuditLog } from '../control/audit.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { BlobStore } from '../storage/blob-store.js';

/** The stores and services a management command needs on the local installation. */
export interface LocalInstallation {
  config: ResolvedConfig;
  logger: Logger;
  metadata: MetadataStore;
  blobs: BlobStore;
  audit: AuditLog;
  auth: AuthService;
  /** `cli:<login name>`, a system administrator. */
  actor: Actor;
  /** Writes the audit log and closes the stores. */
  close(): Promise<void>;
}

/** Opens the metadata database and blob store of `config` (also while the server runs). */
export async function openLocalInstallation(config: ResolvedConfig): Promise<LocalInstallation> {
  const [{ pino }, { openMetadataStore }, { openBlobStore }, { createAuthService }, { AuditLog }, { localActor }] = await Promise.all([
    import('pino'),
    import('../metadata/index.js'),
    import('../storage/index.js'),
    import('../app/auth-service.js'),
    import('../control/audit.js'),
    import('./local-actor.js'),
  ]);
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const metadata = await openMetadataStore(config);
  const blobs = await openBlobStore(config).catch(async (error: unknown) => {
    await metadata.close();
    throw error;
  });
  const audit = new AuditLog(metadata.control.audit, logger);
  const auth = createAuthService(config, metadata, audit, logger);
  return {
    config,
    logger,
    metadata,
    blobs,
    audit,
    auth,
    actor: localActor(),
    async close() {
      await audit.flush();
      await blobs.close();
      await metadata.close();
    },
  };
}
