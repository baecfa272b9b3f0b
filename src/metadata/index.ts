import type { ResolvedConfig } from '../config/load.js';
import type { MetadataStore } from './metadata-store.js';
import { openSqliteMetadataStore } from './sql/sqlite.js';

/**
 * The configured metadata store, its schema brought up to date: embedded SQLite (one node) or
 * PostgreSQL (shared by any number of nodes; loaded only when configured).
 */
export async function openMetadataStore(config: ResolvedConfig): Promise<MetadataStore> {
  if (config.metadata.driver === 'postgres') {
    const { openPostgresMetadataStore } = await import('./sql/postgres.js');
    return openPostgresMetadataStore(config.metadata.url!, {
      poolSize: config.metadata.poolSize,
      statementTimeout: config.metadata.statementTimeout,
      connectTimeout: config.metadata.connectTimeout,
    });
  }
  return openSqliteMetadataStore(config.metadataPath);
}
