// The benchmark in scale-out mode: Stowage on PostgreSQL + S3 against Distribution on S3, both on
// the same throwaway Ceph RADOS Gateway (one bucket each), through bench/run.mjs's variant hooks.
//
//   node --import tsx bench/scaleout.ts            # full run (QUICK=1 for the smoke run)
//
// Starts one PostgreSQL server and one Ceph RGW exactly as the test setup does
// (test/support/services.ts; Debian packages postgresql and ceph-*, installed when missing and
// root), runs `node bench/run.mjs` with BENCH_MODE=scaleout, BENCH_STOWAGE_ENV and
// BENCH_DISTRIBUTION_ENV set, and stops both services at the end (also on Ctrl-C). Results:
// bench/results/latest-scaleout.md (or latest-quick-scaleout.md). The RGW keeps objects in RAM:
// CEPH_MEMSTORE_MB (default here 8192) bounds it. Deleting a blob through either registry leaves
// its bytes in the bucket (until a garbage collection), so the full run's default sizes (about
// 10 GiB stored in all) would fill it; the full run uses 256 MiB blobs and pushes and 128 MiB
// chunked pushes instead (BENCH_BIG_BLOB_MIB, BENCH_PUSH_MIB, BENCH_CHUNKED_PUSH_MIB override).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { adminQuery, databaseUrl, startCephRgw, startPostgres, type RunningService } from '../test/support/services.js';

const root = resolve(import.meta.dirname, '..');
process.env.CEPH_MEMSTORE_MB ??= '8192';
if (process.env.QUICK !== '1') {
  process.env.BENCH_BIG_BLOB_MIB ??= '256';
  process.env.BENCH_PUSH_MIB ??= '256';
  process.env.BENCH_CHUNKED_PUSH_MIB ??= '128';
}

const services: RunningService<unknown>[] = [];
const stopAll = async () => {
  await Promise.allSettled(services.splice(0).map((s) => s.stop()));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stopAll().then(() => process.exit(130)));
}

let code = 1;
try {
  console.log('scale-out benchmark: starting PostgreSQL and Ceph RGW');
  const [pg, s3] = await Promise.all([startPostgres(), startCephRgw()]);
  services.push(pg, s3);
  await adminQuery(pg.info, 'create database stowage_bench');

  const stowageBucket = 'stowage-bench';
  const distributionBucket = 'distribution-bench';
  // Stowage creates its bucket itself; Distribution 2.8 does not.
  const client = new S3Client({
    endpoint: s3.info.endpoint,
    region: s3.info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.info.accessKeyId, secretAccessKey: s3.info.secretAccessKey },
  });
  await client.send(new CreateBucketCommand({ Bucket: distributionBucket }));
  client.destroy();

  const stowageEnv = {
    STOWAGE_METADATA_DRIVER: 'postgres',
    STOWAGE_METADATA_URL: databaseUrl(pg.info, 'stowage_bench'),
    STOWAGE_STORAGE_DRIVER: 's3',
    STOWAGE_S3_ENDPOINT: s3.info.endpoint,
    STOWAGE_S3_REGION: s3.info.region,
    STOWAGE_S3_BUCKET: stowageBucket,
    STOWAGE_S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: s3.info.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.info.secretAccessKey,
  };
  // An environment variable for a config section replaces the whole section in Distribution,
  // so the bench's storage settings (deletes on, in-memory blob descriptor cache, no redirects)
  // are given again here.
  const distributionEnv = {
    REGISTRY_STORAGE: 's3',
    REGISTRY_STORAGE_S3_REGION: s3.info.region,
    REGISTRY_STORAGE_S3_REGIONENDPOINT: s3.info.endpoint,
    REGISTRY_STORAGE_S3_BUCKET: distributionBucket,
    REGISTRY_STORAGE_S3_ACCESSKEY: s3.info.accessKeyId,
    REGISTRY_STORAGE_S3_SECRETKEY: s3.info.secretAccessKey,
    REGISTRY_STORAGE_S3_SECURE: 'false',
    REGISTRY_STORAGE_S3_V4AUTH: 'true',
    REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'inmemory',
    REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
  };
  const list = (env: Record<string, string>) => Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');

  code = await new Promise<number>((ok) => {
    const child = spawn(process.execPath, [resolve(root, 'bench/run.mjs')], {
      cwd: root,
      stdio: 'inherit',
      env: {
        ...process.env,
        BENCH_MODE: process.env.BENCH_MODE ?? 'scaleout',
        BENCH_STOWAGE_ENV: [list(stowageEnv), process.env.BENCH_STOWAGE_ENV ?? ''].join(' ').trim(),
        BENCH_DISTRIBUTION_ENV: [list(distributionEnv), process.env.BENCH_DISTRIBUTION_ENV ?? ''].join(' ').trim(),
      },
    });
    child.once('exit', (exitCode) => ok(exitCode ?? 1));
  });
} catch (error) {
  console.error(`scale-out benchmark failed: ${(error as Error).message}`);
} finally {
  await stopAll();
}
process.exit(code);
