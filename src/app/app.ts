import { mkdir } from 'node:fs/promises';
import type { FastifyInstance, FastifyListenOptions } from 'fastify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';
import { createHttpServer } from '../http/server.js';
import { Metrics } from '../http/metrics.js';
import { openMetadataStore } from '../metadata/index.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { createRegistry, type Registry } from '../registry/registry.js';
import { runsBackgroundJobs } from './cluster.js';
import { enableGarbageCollection, scheduleGarbageCollection } from './gc.js';
import { createAccess, readTls, type Access } from './access.js';
import { probeDependencies } from './readiness.js';
import { RetentionScheduler } from '../control/retention-scheduler.js';
import type { BlobStore } from '../storage/blob-store.js';
import { openBlobStore } from '../storage/index.js';
import { nodeName } from '../events/context.js';
import { Dispatcher } from '../events/dispatcher.js';
import { dispatcherOptions } from '../events/settings.js';
import { createTracing, traceRequests, withTracing } from '../tracing/instrument.js';

export interface App {
  http: FastifyInstance;
  /** This process's Prometheus metrics (made node-wide by the process model, src/cli/main.ts). */
  metrics: Metrics;
  registry: Registry;
  blobStore: BlobStore;
  metadata: MetadataStore;
  /** Identity and access control (users, projects, tokens, audit log). */
  access: Access;
  /** Webhook delivery; started by listen() in the process that runs background jobs. */
  dispatcher: Dispatcher;
  /** Re-reads the TLS certificate and key (SIGHUP); resolves to false when not serving HTTPS. */
  reloadTls(): Promise<boolean>;
  /**
   * Starts listening on `config.listen`, or (a node's other workers) on the first process's
   * listening socket `handle`; resolves to the bound address (host:port).
   */
  listen(handle?: object): Promise<string>;
  /** Stops accepting, lets requests in flight finish (within the configured bound), closes stores. */
  close(): Promise<void>;
}

/** The composition root: builds drivers, the domain and the HTTP server from the config. */
export async function createApp(config: ResolvedConfig, logger: Logger): Promise<App> {
  await mkdir(config.dataDir, { recursive: true });
  // OpenTelemetry (tracing.otlpEndpoint): a span per request, child spans per driver call.
  const tracing = createTracing(config.tracing, logger);
  const metadata = withTracing(tracing, await openMetadataStore(config), 'metadata');
  const blobStore = withTracing(
    tracing,
    await openBlobStore(config).catch(async (error: unknown) => {
      await metadata.close();
      throw error;
    }),
    'storage',
  );
  const registry = createRegistry(blobStore, metadata, nodeName(config.node.name));
  const metrics = new Metrics({
    uploadsInProgress: () => metadata.uploads.count(),
    storageUsedBytes: () => metadata.blobs.totalSize(),
    gcTotals: () => metadata.gc.totals(),
    ...(blobStore.requestCounts ? { objectStoreRequests: () => blobStore.requestCounts!() } : {}),
  });
  const access = await createAccess(config, metadata, logger, blobStore);
  const dispatcher = new Dispatcher(metadata.events, logger, { ...dispatcherOptions(config), metrics: metrics.registry });
  enableGarbageCollection({ config, metadata, blobStore, uploads: registry.uploads, garbage: access.control.garbage, audit: access.control.audit, logger });
  let stopGcSchedule = () => {};
  const tls = await readTls(config);
  const http = createHttpServer({
    registry,
    metrics,
    logger,
    logRequests: config.log.requests,
    ready: () => probeDependencies({ 'blob storage': () => blobStore.ping(), 'metadata database': () => metadata.ping() }),
    access: access.http,
    tls,
    hstsMaxAge: Math.floor(config.tls.hsts / 1000),
    trustedProxies: config.trustedProxies,
  });
  if (tracing) traceRequests(http, tracing.tracer);

  const purgeUploads = async () => {
    try {
      const removed = await registry.uploads.expire(new Date(Date.now() - config.uploads.expiry));
      if (removed > 0) logger.info({ removed }, 'expired upload sessions removed');
    } catch (error) {
      logger.error({ err: error }, 'expiring upload sessions failed');
    }
  };
  let purgeTimer: NodeJS.Timeout | undefined;
  const purgeAccess = async () => {
    try {
      await access.purge();
    } catch (error) {
      logger.error({ err: error }, 'purging the audit log and expired credentials failed');
    }
  };
  let accessTimer: NodeJS.Timeout | undefined;
  // Scheduled retention runs (policies' own cron or retention.schedule), in the background-jobs process.
  const retention = new RetentionScheduler(metadata, access.control.retention, logger);

  return {
    http,
    metrics,
    registry,
    blobStore,
    metadata,
    access,
    dispatcher,
    async reloadTls() {
      const fresh = await readTls(config);
      if (!fresh || !tls) return false;
      // Only new connections get the new certificate; established ones keep theirs.
      (http.server as unknown as { setSecureContext(options: { cert: Buffer; key: Buffer }): void }).setSecureContext({ cert: fresh.cert, key: fresh.key });
      return true;
    },
    async listen(handle?: object) {
      const separator = config.listen.lastIndexOf(':');
      const host = config.listen.slice(0, separator).replace(/^\[|\]$/g, '') || '0.0.0.0';
      const port = Number(config.listen.slice(separator + 1));
      // With a handle Node ignores host and port (Fastify passes the options on to Node, but its
      // types omit `handle`); the host keeps Fastify from binding `localhost` a second time.
      await http.listen(handle ? ({ handle, host } as FastifyListenOptions) : { host, port });
      if (runsBackgroundJobs()) {
        retention.start();
        dispatcher.start();
        stopGcSchedule = scheduleGarbageCollection(config.gc.schedule, access.control.garbage, logger);
        await purgeUploads();
        purgeTimer = setInterval(purgeUploads, config.uploads.purgeInterval);
        purgeTimer.unref();
        await purgeAccess();
        accessTimer = setInterval(purgeAccess, 3_600_000);
        accessTimer.unref();
      }
      const address = http.server.address();
      return typeof address === 'object' && address ? `${address.address}:${address.port}` : config.listen;
    },
    async close() {
      if (purgeTimer) clearInterval(purgeTimer);
      await retention.stop();
      if (accessTimer) clearInterval(accessTimer);
      stopGcSchedule();
      await dispatcher.stop();
      const deadline = setTimeout(() => {
        logger.warn({ timeoutMs: config.shutdownTimeout }, 'requests still in flight at the shutdown deadline; closing them');
        http.server.closeAllConnections();
      }, config.shutdownTimeout);
      deadline.unref();
      try {
        await http.close();
      } finally {
        clearTimeout(deadline);
        await access.control.garbage.stop();
        await access.close();
        await blobStore.close();
        await metadata.close();
        await tracing?.flush();
      }
    },
  };
}
