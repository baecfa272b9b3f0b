import { mkdir } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';
import { createHttpServer } from '../http/server.js';
import { Metrics } from '../http/metrics.js';
import { openSqliteMetadataStore } from '../metadata/sql/sqlite.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { createRegistry, type Registry } from '../registry/registry.js';
import { runsBackgroundJobs } from './cluster.js';
import type { BlobStore } from '../storage/blob-store.js';
import { FsBlobStore } from '../storage/fs/fs-blob-store.js';

export interface App {
  http: FastifyInstance;
  registry: Registry;
  blobStore: BlobStore;
  metadata: MetadataStore;
  /** Starts listening; resolves to the bound address (host:port). */
  listen(): Promise<string>;
  /** Stops accepting, lets requests in flight finish (within the configured bound), closes stores. */
  close(): Promise<void>;
}

/** The composition root: builds drivers, the domain and the HTTP server from the config. */
export async function createApp(config: ResolvedConfig, logger: Logger): Promise<App> {
  await mkdir(config.dataDir, { recursive: true });
  const blobStore = new FsBlobStore(config.storagePath);
  const metadata = await openSqliteMetadataStore(config.metadataPath);
  const registry = createRegistry(blobStore, metadata);
  const metrics = new Metrics({
    uploadsInProgress: () => metadata.uploads.count(),
    storageUsedBytes: () => metadata.blobs.totalSize(),
  });
  const http = createHttpServer({
    registry,
    metrics,
    logger,
    logRequests: config.log.requests,
    ready: async () => {
      await Promise.all([blobStore.ping(), metadata.ping()]);
    },
  });

  const purgeUploads = async () => {
    try {
      const removed = await registry.uploads.expire(new Date(Date.now() - config.uploads.expiry));
      if (removed > 0) logger.info({ removed }, 'expired upload sessions removed');
    } catch (error) {
      logger.error({ err: error }, 'expiring upload sessions failed');
    }
  };
  let purgeTimer: NodeJS.Timeout | undefined;

  return {
    http,
    registry,
    blobStore,
    metadata,
    async listen() {
      const separator = config.listen.lastIndexOf(':');
      const host = config.listen.slice(0, separator).replace(/^\[|\]$/g, '') || '0.0.0.0';
      const port = Number(config.listen.slice(separator + 1));
      await http.listen({ host, port });
      if (runsBackgroundJobs()) {
        await purgeUploads();
        purgeTimer = setInterval(purgeUploads, config.uploads.purgeInterval);
        purgeTimer.unref();
      }
      const address = http.server.address();
      return typeof address === 'object' && address ? `${address.address}:${address.port}` : config.listen;
    },
    async close() {
      if (purgeTimer) clearInterval(purgeTimer);
      const deadline = setTimeout(() => {
        logger.warn({ timeoutMs: config.shutdownTimeout }, 'requests still in flight at the shutdown deadline; closing them');
        http.server.closeAllConnections();
      }, config.shutdownTimeout);
      deadline.unref();
      try {
        await http.close();
      } finally {
        clearTimeout(deadline);
        await blobStore.close();
        await metadata.close();
      }
    },
  };
}
