import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { settings } from '../../src/config/schema.js';

function configFile(yaml: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'stowage-config-')), 'stowage.yaml');
  writeFileSync(file, yaml);
  return file;
}

function configError(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('storage and metadata drivers', () => {
  it('defaults to the filesystem and SQLite', () => {
    const config = loadConfig({ env: {} });
    expect(config.storage.driver).toBe('filesystem');
    expect(config.metadata.driver).toBe('sqlite');
    expect(config.storage.s3).toMatchObject({ region: 'us-east-1', forcePathStyle: false, createBucket: true, redirect: false, partSize: 8 * 1024 * 1024 });
    expect(config.metadata).toMatchObject({ poolSize: 10, statementTimeout: 30_000 });
  });

  it('reads the scale-out settings from the environment variables every deployment script uses', () => {
    const config = loadConfig({
      env: {
        STOWAGE_METADATA_DRIVER: 'postgres',
        STOWAGE_METADATA_URL: 'postgres://stowage:secret@db:5432/stowage',
        STOWAGE_METADATA_POOL_SIZE: '25',
        STOWAGE_STORAGE_DRIVER: 's3',
        STOWAGE_S3_ENDPOINT: 'http://rgw:7480',
        STOWAGE_S3_REGION: 'eu-west-1',
        STOWAGE_S3_BUCKET: 'registry-blobs',
        STOWAGE_S3_PREFIX: 'prod',
        STOWAGE_S3_FORCE_PATH_STYLE: 'true',
        STOWAGE_S3_PART_SIZE: '16MiB',
        STOWAGE_S3_REDIRECT: 'yes',
        STOWAGE_S3_SSE: 'AES256',
      },
    });
    expect(config.metadata).toMatchObject({ driver: 'postgres', url: 'postgres://stowage:secret@db:5432/stowage', poolSize: 25 });
    expect(config.storage.driver).toBe('s3');
    expect(config.storage.s3).toMatchObject({
      endpoint: 'http://rgw:7480',
      region: 'eu-west-1',
      bucket: 'registry-blobs',
      prefix: 'prod',
      forcePathStyle: true,
      partSize: 16 * 1024 * 1024,
      redirect: true,
      serverSideEncryption: 'AES256',
    });
    for (const env of ['STOWAGE_METADATA_DRIVER', 'STOWAGE_METADATA_URL', 'STOWAGE_STORAGE_DRIVER', 'STOWAGE_S3_ENDPOINT', 'STOWAGE_S3_REGION', 'STOWAGE_S3_BUCKET', 'STOWAGE_S3_PREFIX', 'STOWAGE_S3_FORCE_PATH_STYLE']) {
      expect(settings.map((s) => s.env)).toContain(env);
    }
  });

  it('takes credentials and the rest from the config file, flags over both', () => {
    const file = configFile(
      [
        'storage:',
        '  driver: s3',
        '  s3: { bucket: from-file, accessKeyId: AKIA, secretAccessKey: shh, redirectExpiry: 5m, createBucket: false }',
        'metadata: { driver: postgres, url: "postgresql://db/stowage", statementTimeout: 10s }',
      ].join('\n'),
    );
    const config = loadConfig({ file, env: { STOWAGE_S3_BUCKET: 'from-env' }, flags: { 'storage.s3.prefix': 'flagged' } });
    expect(config.storage.s3).toMatchObject({ bucket: 'from-env', prefix: 'flagged', accessKeyId: 'AKIA', secretAccessKey: 'shh', redirectExpiry: 300_000, createBucket: false });
    expect(config.metadata.statementTimeout).toBe(10_000);
  });

  it('names the missing or invalid setting and where it came from', () => {
    expect(configError(() => loadConfig({ env: { STOWAGE_STORAGE_DRIVER: 's3' } }))).toMatch(/storage\.s3\.bucket: required when storage\.driver is s3/);
    expect(configError(() => loadConfig({ env: { STOWAGE_METADATA_DRIVER: 'postgres' } }))).toMatch(/metadata\.url: required when metadata\.driver is postgres/);
    expect(configError(() => loadConfig({ env: { STOWAGE_METADATA_DRIVER: 'mysql' } }))).toMatch(/metadata\.driver: .*\(from environment variable STOWAGE_METADATA_DRIVER\)/);
    expect(configError(() => loadConfig({ env: { STOWAGE_METADATA_DRIVER: 'postgres', STOWAGE_METADATA_URL: 'mysql://x' } }))).toMatch(
      /metadata\.url: expected a PostgreSQL URL.*STOWAGE_METADATA_URL/,
    );
    expect(configError(() => loadConfig({ env: { STOWAGE_STORAGE_DRIVER: 's3', STOWAGE_S3_BUCKET: 'Bad_Bucket' } }))).toMatch(/storage\.s3\.bucket: expected an S3 bucket name/);
    expect(configError(() => loadConfig({ env: { STOWAGE_S3_PART_SIZE: '1MiB' } }))).toMatch(/storage\.s3\.partSize: must be between 5MiB and 5GiB/);
    expect(configError(() => loadConfig({ env: { STOWAGE_S3_PART_SIZE: 'lots' } }))).toMatch(/storage\.s3\.partSize: expected a size/);
    const half = configFile('storage: { driver: s3, s3: { bucket: b1, accessKeyId: AKIA } }');
    expect(configError(() => loadConfig({ file: half, env: {} }))).toMatch(/accessKeyId and secretAccessKey go together/);
  });
});
