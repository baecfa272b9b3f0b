import type { ResolvedConfig } from '../config/load.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs/fs-blob-store.js';

/**
 * The configured blob store: a local directory, or an S3-compatible bucket (checked, and created
 * when missing unless configured not to; the AWS SDK is loaded only then).
 */
export async function openBlobStore(config: ResolvedConfig): Promise<BlobStore> {
  if (config.storage.driver !== 's3') return new FsBlobStore(config.storagePath);
  const { S3BlobStore } = await import('./s3/s3-blob-store.js');
  const s3 = config.storage.s3;
  const store = new S3BlobStore({
    bucket: s3.bucket!,
    prefix: s3.prefix,
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    // Without static credentials: the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
    // profiles, web identity, instance metadata).
    credentials:
      s3.accessKeyId && s3.secretAccessKey
        ? { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, ...(s3.sessionToken ? { sessionToken: s3.sessionToken } : {}) }
        : undefined,
    serverSideEncryption: s3.serverSideEncryption === 'none' ? undefined : s3.serverSideEncryption,
    kmsKeyId: s3.kmsKeyId,
    partSize: s3.partSize,
    partConcurrency: s3.partConcurrency,
    createBucket: s3.createBucket,
    redirectExpiresIn: s3.redirect ? Math.round(s3.redirectExpiry / 1000) : undefined,
    connectTimeout: s3.connectTimeout,
    socketTimeout: s3.requestTimeout,
    maxAttempts: s3.maxAttempts,
  });
  try {
    await store.init();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
