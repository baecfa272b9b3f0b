import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';
import { AuditLog } from '../control/audit.js';
import { bootstrapAdmin } from '../control/bootstrap.js';
import { createControl, type Control } from '../control/control.js';
import type { BlobReader } from '../control/tag-history.js';
import { openGuard, TokenGuard, type RegistryGuard } from '../http/auth/registry-guard.js';
import type { HttpServerOptions } from '../http/server.js';
import { createAuthService } from './auth-service.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { recorderOptions } from '../events/settings.js';

export interface Access {
  control: Control;
  guard: RegistryGuard;
  /** What createHttpServer needs of it. */
  http: HttpServerOptions['access'];
  /** Periodic clean-up (one process a node): audit retention, expired credentials, old keys. */
  purge(): Promise<void>;
  close(): Promise<void>;
}

const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/**
 * Identity and access control of a serving process: the services, the /v2 guard, and on first
 * start of a database the signing key and the admin user (race-free across workers and nodes:
 * the database decides). With `auth: none`, a loud warning and an open guard.
 */
export async function createAccess(config: ResolvedConfig, metadata: MetadataStore, logger: Logger, blobs?: BlobReader): Promise<Access> {
  const audit = new AuditLog(metadata.control.audit, logger);
  const auth = createAuthService(config, metadata, audit, logger);
  const control = createControl(metadata, auth, audit, blobs, recorderOptions(config));
  control.events.logTo(logger);
  control.pulls.logTo(logger);
  control.retention.useDefaultSchedule(config.retention.schedule);
  const open = config.auth.mode === 'none';
  let guard: RegistryGuard = openGuard;
  if (open) {
    logger.warn('authentication is OFF (auth: none): anyone who can reach this server may push, pull and delete, and use the management API as an administrator');
  } else {
    await auth.start();
    await bootstrapAdmin(metadata.control, { password: config.auth.adminPassword, passwordFile: config.adminPasswordFile }, logger);
    guard = new TokenGuard(auth, control.projects, { service: config.auth.service, realm: config.auth.realm, basic: config.auth.basicOnRegistry });
  }
  return {
    control,
    guard,
    http: { guard, control, open, service: config.auth.service, auditPulls: config.audit.pulls, version },
    async purge() {
      const removed = await audit.purge(config.audit.retention);
      if (removed > 0) logger.info({ removed }, 'audit log entries past retention removed');
      if (!open) await auth.purge();
    },
    async close() {
      auth.stop();
      await audit.flush();
      await control.pulls.flush();
      await control.events.flush(true);
    },
  };
}

/** Reads the TLS files of the configuration (at start and on SIGHUP). */
export async function readTls(config: ResolvedConfig): Promise<HttpServerOptions['tls']> {
  if (!config.tls.cert || !config.tls.key) return undefined;
  const [cert, key] = await Promise.all([readFile(config.tls.cert), readFile(config.tls.key)]);
  return { cert, key };
}
