import { z } from 'zod';
import { boolean, duration } from './primitives.js';

const MiB = 1024 * 1024;

/** "8MiB", "16MB", "512KiB", "1GiB" or a number of bytes. */
export const byteSize = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as 8MiB, 16MB or a number of bytes, got "${value}"` });
    return z.NEVER;
  }
  const units: Record<string, number> = { b: 1, kb: 1000, kib: 1024, mb: 1e6, mib: MiB, gb: 1e9, gib: 1024 * MiB };
  return Math.round(Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]!);
});

/** Bucket names as S3 accepts them (lowercase letters, digits, dots and hyphens). */
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name: 3 to 63 lowercase letters, digits, dots or hyphens');

/**
 * Where blobs live: a local directory (`filesystem`, the default) or an S3-compatible object
 * store (`s3`: AWS S3, Ceph RGW, MinIO, R2, ...), which several nodes can share.
 */
export const storageSchema = z
  .object({
    driver: z.enum(['filesystem', 's3']).default('filesystem'),
    path: z.string().min(1).optional(),
    s3: z
      .object({
        /** Omit for AWS S3; e.g. http://rgw.internal:7480 for an S3-compatible server. */
        endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).optional(),
        region: z.string().min(1).default('us-east-1'),
        bucket: bucketName.optional(),
        /** Key prefix inside the bucket, so that several registries can share one. */
        prefix: z.string().max(512).default(''),
        forcePathStyle: boolean.default(false),
        /** Static credentials; without them, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the rest of the standard AWS chain. */
        accessKeyId: z.string().min(1).optional(),
        secretAccessKey: z.string().min(1).optional(),
        sessionToken: z.string().min(1).optional(),
        serverSideEncryption: z.enum(['none', 'AES256', 'aws:kms']).default('none'),
        kmsKeyId: z.string().min(1).optional(),
        /** Part size of streamed multipart uploads; memory per upload is about (partConcurrency + 1) parts. */
        partSize: byteSize
          .prefault('8MiB')
          .refine((n) => n >= 5 * MiB && n <= 5 * 1024 * MiB, 'must be between 5MiB and 5GiB (S3 part size limits)'),
        partConcurrency: z.coerce.number().int().min(1).max(16).default(2),
        createBucket: boolean.default(true),
        /** Answer blob GETs with a redirect to a pre-signed URL, so that bytes flow from the object store. */
        redirect: boolean.default(false),
        redirectExpiry: duration.prefault('20m').refine((ms) => ms >= 1000 && ms <= 7 * 86_400_000, 'must be between 1s and 7d'),
        connectTimeout: duration.prefault('5s'),
        /** A request whose connection stays silent this long fails (and is retried). */
        requestTimeout: duration.prefault('60s'),
        maxAttempts: z.coerce.number().int().min(1).max(10).default(3),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({})
  .superRefine((storage, ctx) => {
    if (storage.driver !== 's3') return;
    if (!storage.s3.bucket) ctx.addIssue({ code: 'custom', path: ['s3', 'bucket'], message: 'required when storage.driver is s3' });
    if ((storage.s3.accessKeyId === undefined) !== (storage.s3.secretAccessKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['s3', 'secretAccessKey'], message: 'accessKeyId and secretAccessKey go together' });
    }
  });

/**
 * Where metadata lives: an embedded SQLite file (`sqlite`, the default; one node) or a
 * PostgreSQL database (`postgres`) that any number of nodes share.
 */
export const metadataSchema = z
  .object({
    driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
    path: z.string().min(1).optional(),
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a PostgreSQL URL, postgres://user:password@host:5432/database')
      .optional(),
    /** Connections per process (each worker has its own pool). */
    poolSize: z.coerce.number().int().min(1).max(1000).default(10),
    statementTimeout: duration.prefault('30s'),
    /** Waiting for a connection (a new one, or a free one from the pool) fails after this. */
    connectTimeout: duration.prefault('10s'),
  })
  .strict()
  .prefault({})
  .superRefine((metadata, ctx) => {
    if (metadata.driver === 'postgres' && !metadata.url) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'required when metadata.driver is postgres' });
    }
  });

export const backendSettings = [
  { key: 'storage.driver', env: 'STOWAGE_STORAGE_DRIVER', flag: '--storage-driver <driver>', help: 'filesystem or s3 (default filesystem)' },
  { key: 'storage.s3.endpoint', env: 'STOWAGE_S3_ENDPOINT', flag: '--s3-endpoint <url>', help: 'S3 endpoint URL (default: AWS S3 for the region)' },
  { key: 'storage.s3.region', env: 'STOWAGE_S3_REGION', flag: '--s3-region <region>', help: 'S3 region (default us-east-1)' },
  { key: 'storage.s3.bucket', env: 'STOWAGE_S3_BUCKET', flag: '--s3-bucket <name>', help: 'S3 bucket (required with --storage-driver s3)' },
  { key: 'storage.s3.prefix', env: 'STOWAGE_S3_PREFIX', flag: '--s3-prefix <prefix>', help: 'key prefix inside the bucket (default none)' },
  { key: 'storage.s3.forcePathStyle', env: 'STOWAGE_S3_FORCE_PATH_STYLE', flag: '--s3-force-path-style <bool>', help: 'path-style requests, for most S3-compatible servers (default false)' },
  { key: 'storage.s3.serverSideEncryption', env: 'STOWAGE_S3_SSE', flag: '--s3-sse <mode>', help: 'server-side encryption: none, AES256 or aws:kms (default none)' },
  { key: 'storage.s3.kmsKeyId', env: 'STOWAGE_S3_SSE_KMS_KEY_ID', flag: '--s3-sse-kms-key-id <id>', help: 'KMS key for aws:kms (default: the bucket default)' },
  { key: 'storage.s3.partSize', env: 'STOWAGE_S3_PART_SIZE', flag: '--s3-part-size <size>', help: 'multipart part size, 5MiB to 5GiB (default 8MiB)' },
  { key: 'storage.s3.createBucket', env: 'STOWAGE_S3_CREATE_BUCKET', flag: '--s3-create-bucket <bool>', help: 'create the bucket at start when missing (default true)' },
  { key: 'storage.s3.redirect', env: 'STOWAGE_S3_REDIRECT', flag: '--s3-redirect <bool>', help: 'answer blob GETs with a redirect to a pre-signed URL (default false)' },
  { key: 'storage.s3.redirectExpiry', env: 'STOWAGE_S3_REDIRECT_EXPIRY', flag: '--s3-redirect-expiry <duration>', help: 'lifetime of pre-signed redirect URLs (default 20m)' },
  { key: 'storage.s3.requestTimeout', env: 'STOWAGE_S3_REQUEST_TIMEOUT', flag: '--s3-request-timeout <duration>', help: 'an S3 request whose connection stays silent this long fails (default 60s)' },
  { key: 'storage.s3.maxAttempts', env: 'STOWAGE_S3_MAX_ATTEMPTS', flag: '--s3-max-attempts <n>', help: 'attempts per S3 request, retries included (default 3)' },
  { key: 'metadata.driver', env: 'STOWAGE_METADATA_DRIVER', flag: '--metadata-driver <driver>', help: 'sqlite or postgres (default sqlite)' },
  { key: 'metadata.url', env: 'STOWAGE_METADATA_URL', flag: '--metadata-url <url>', help: 'PostgreSQL URL, postgres://user:password@host:5432/db (required with --metadata-driver postgres)' },
  { key: 'metadata.poolSize', env: 'STOWAGE_METADATA_POOL_SIZE', flag: '--metadata-pool-size <n>', help: 'PostgreSQL connections per process (default 10)' },
  { key: 'metadata.statementTimeout', env: 'STOWAGE_METADATA_STATEMENT_TIMEOUT', flag: '--metadata-statement-timeout <duration>', help: 'PostgreSQL cancels statements running longer (default 30s)' },
  { key: 'metadata.connectTimeout', env: 'STOWAGE_METADATA_CONNECT_TIMEOUT', flag: '--metadata-connect-timeout <duration>', help: 'waiting for a PostgreSQL connection fails after this (default 10s)' },
] as const;
