import type { Logger } from 'pino';
import { AuthService } from '../auth/service.js';
import type { ResolvedConfig } from '../config/load.js';
import type { AuditLog } from '../control/audit.js';
import type { MetadataStore } from '../metadata/metadata-store.js';

/** The AuthService of a configuration (also used by the CLI on the local database). */
export function createAuthService(config: ResolvedConfig, metadata: MetadataStore, audit: AuditLog, logger: Logger): AuthService {
  return new AuthService(metadata.control, audit, logger, {
    service: config.auth.service,
    issuer: config.auth.issuer,
    tokenTtlMs: config.auth.tokenTtl,
    refreshTokenTtlMs: config.auth.refreshTokenTtl,
    sessionTtlMs: config.auth.sessionTtl,
    projectCreation: config.auth.projectCreation,
    loginFailures: { perUser: config.auth.loginFailures.perUser, perAddress: config.auth.loginFailures.perAddress, windowMs: config.auth.loginFailures.window },
  });
}
