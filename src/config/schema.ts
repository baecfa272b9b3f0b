import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { accessSettings, auditSchema, authSchema, tlsSchema, trustedProxiesSchema } from './access-schema.js';
import { backendSettings, metadataSchema, storageSchema } from './backends-schema.js';
import { gcSchema, gcSettings } from './gc-schema.js';
import { boolean, duration } from './primitives.js';
import { retentionSchema, retentionSettings } from './retention-schema.js';
import { eventSettings, eventsSchema, nodeSchema, webhooksSchema } from './events-schema.js';
import { tracingSchema, tracingSettings } from './tracing-schema.js';

export { duration };

const listen = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:5000 or 127.0.0.1:5000').refine(
  (value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535,
  'port must be at most 65535',
);

export const configSchema = z
  .object({
    listen: listen.default('0.0.0.0:5000'),
    dataDir: z.string().min(1).default('./data'),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        requests: boolean.default(true),
      })
      .strict()
      .prefault({}),
    uploads: z
      .object({
        expiry: duration.prefault('24h'),
        purgeInterval: duration.prefault('15m'),
      })
      .strict()
      .prefault({}),
    shutdownTimeout: duration.prefault('30s'),
    /** HTTP worker processes: `auto` (one per CPU core) or a number; 1 serves from one process. */
    workers: z
      .union([z.literal('auto'), z.coerce.number().int().min(1).max(64)])
      .default('auto')
      .transform((value) => (value === 'auto' ? availableParallelism() : value)),
    storage: storageSchema,
    metadata: metadataSchema,
    auth: authSchema.prefault({}),
    tls: tlsSchema,
    trustedProxies: trustedProxiesSchema,
    audit: auditSchema,
    retention: retentionSchema,
    gc: gcSchema,
    node: nodeSchema,
    events: eventsSchema,
    webhooks: webhooksSchema,
    tracing: tracingSchema,
  })
  .strict();

export type Config = z.output<typeof configSchema>;

/**
 * Every setting that the environment and the command line can give, with its config-file key.
 * The CLI's --help and the README's configuration table come from this one list.
 */
export const settings = [
  { key: 'listen', env: 'STOWAGE_LISTEN', flag: '--listen <host:port>', help: 'address to listen on (default 0.0.0.0:5000)' },
  { key: 'dataDir', env: 'STOWAGE_DATA_DIR', flag: '--data-dir <dir>', help: 'directory for blobs and metadata (default ./data)' },
  { key: 'log.level', env: 'STOWAGE_LOG_LEVEL', flag: '--log-level <level>', help: 'trace, debug, info, warn, error, fatal or silent (default info)' },
  { key: 'log.requests', env: 'STOWAGE_LOG_REQUESTS', flag: '--log-requests <bool>', help: 'log one line per request (default true)' },
  { key: 'uploads.expiry', env: 'STOWAGE_UPLOADS_EXPIRY', flag: '--upload-expiry <duration>', help: 'remove upload sessions idle this long (default 24h)' },
  { key: 'uploads.purgeInterval', env: 'STOWAGE_UPLOADS_PURGE_INTERVAL', flag: '--upload-purge-interval <duration>', help: 'how often to look for expired uploads (default 15m)' },
  { key: 'shutdownTimeout', env: 'STOWAGE_SHUTDOWN_TIMEOUT', flag: '--shutdown-timeout <duration>', help: 'how long SIGTERM waits for requests in flight (default 30s)' },
  { key: 'workers', env: 'STOWAGE_WORKERS', flag: '--workers <n>', help: 'HTTP worker processes: auto (one per CPU core) or a number (default auto)' },
  { key: 'storage.path', env: 'STOWAGE_STORAGE_PATH', flag: '--storage-path <dir>', help: 'blob directory of the filesystem driver (default <data-dir>/storage)' },
  { key: 'metadata.path', env: 'STOWAGE_METADATA_PATH', flag: '--metadata-path <file>', help: 'SQLite database file (default <data-dir>/stowage.db)' },
  ...backendSettings,
  ...accessSettings,
  ...retentionSettings,
  ...gcSettings,
  ...eventSettings,
  ...tracingSettings,
] as const;
