// Blob GET on the scale-out backends: a large blob read through a Stowage node (S3 -> node ->
// client) against the same object read straight from the object store (a pre-signed URL), both
// with curl, alternating, on a throwaway PostgreSQL + Ceph RGW started as the test setup does.
//
//   node --import tsx bench/scaleout-get.ts [MiB=256] [rounds=3]
//
// Extra Stowage settings for an experiment: BENCH_STOWAGE_ENV="K=V K=V".
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { S3BlobStore } from '../src/storage/s3/s3-blob-store.js';
import { adminQuery, databaseUrl, startCephRgw, startPostgres, type RunningService } from '../test/support/services.js';
import { freePort } from '../test/support/stowage.js';

const root = resolve(import.meta.dirname, '..');
const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 256);
const rounds = Number(process.argv[3] ?? 3);
const services: RunningService<unknown>[] = [];
let node: ReturnType<typeof spawn> | undefined;
const file = join(tmpdir(), `stowage-get-${process.pid}.bin`);
const extraProcesses: ReturnType<typeof spawn>[] = [];
const BARE_PROXY = `
const http = require('node:http');
http.createServer((req, res) => {
  http.get(process.env.TARGET, (up) => {
    res.writeHead(up.statusCode, { 'content-length': up.headers['content-length'] });
    up.pipe(res);
  });
}).listen(0, '127.0.0.1', function () { console.log(this.address().port); });
`;

try {
  const [pg, s3] = await Promise.all([startPostgres(), startCephRgw()]);
  services.push(pg, s3);
  await adminQuery(pg.info, 'create database stowage_get');
  const bucket = 'stowage-get';
  const port = await freePort();
  const extra = Object.fromEntries((process.env.BENCH_STOWAGE_ENV ?? '').split(/\s+/).filter(Boolean).map((kv) => kv.split('=', 2) as [string, string]));
  node = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(tmpdir(), `stowage-get-${process.pid}`)], {
    cwd: root,
    stdio: 'inherit',
    env: {
      ...process.env,
      STOWAGE_AUTH: 'none',
      STOWAGE_LOG_LEVEL: 'warn',
      STOWAGE_LOG_REQUESTS: 'false',
      STOWAGE_WORKERS: '1',
      STOWAGE_METADATA_DRIVER: 'postgres',
      STOWAGE_METADATA_URL: databaseUrl(pg.info, 'stowage_get'),
      STOWAGE_STORAGE_DRIVER: 's3',
      STOWAGE_S3_ENDPOINT: s3.info.endpoint,
      STOWAGE_S3_BUCKET: bucket,
      STOWAGE_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: s3.info.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.info.secretAccessKey,
      ...extra,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (i > 600) throw new Error('the node did not become ready');
    if ((await fetch(`${url}/readyz`).catch(() => null))?.status === 200) break;
    await new Promise((ok) => setTimeout(ok, 100));
  }

  // The blob: random bytes, pushed in one streamed request.
  const hash = createHash('sha256');
  const fd = openSync(file, 'w');
  for (let i = 0; i < sizeMiB; i++) {
    const chunk = randomBytes(MiB);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  const digest = `sha256:${hash.digest('hex')}`;
  execFileSync('curl', ['-sS', '--fail-with-body', '--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream', `${url}/v2/bench/get/blobs/uploads/?digest=${digest}`]);

  const store = new S3BlobStore({ bucket, endpoint: s3.info.endpoint, forcePathStyle: true, credentials: { accessKeyId: s3.info.accessKeyId, secretAccessKey: s3.info.secretAccessKey }, redirectExpiresIn: 3600 });
  const direct = (await store.redirectUrl(digest))!;
  store.client.destroy();

  // The floor of any Node proxy on this machine: a bare http server piping the same pre-signed GET.
  const bareProxy = spawn(process.execPath, ['-e', BARE_PROXY], { env: { ...process.env, TARGET: direct }, stdio: ['ignore', 'pipe', 'inherit'] });
  const barePort = await new Promise<number>((ok) => bareProxy.stdout!.once('data', (d: Buffer) => ok(Number(d.toString().trim()))));
  extraProcesses.push(bareProxy);

  const speed = (target: string) => Number(execFileSync('curl', ['-sf', '-o', '/dev/null', '-w', '%{speed_download}', target]).toString()) / MiB;
  // CPU seconds the node spent (user + system, from /proc): what a GET costs it, whatever the load.
  const cpu = () => {
    const fields = readFileSync(`/proc/${node!.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  const results: Record<string, number[]> = { 'through the node': [], 'bare Node proxy': [], 'direct from RGW': [] };
  const cpuPerGiB: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const before = cpu();
    results['through the node']!.push(speed(`${url}/v2/bench/get/blobs/${digest}`));
    cpuPerGiB.push(((cpu() - before) * 1024) / sizeMiB);
    results['bare Node proxy']!.push(speed(`http://127.0.0.1:${barePort}/`));
    results['direct from RGW']!.push(speed(direct));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\nblob GET of ${sizeMiB} MiB, ${rounds} rounds (MiB/s, median [all])`);
  for (const [label, xs] of Object.entries(results)) console.log(`  ${label.padEnd(18)} ${median(xs).toFixed(0).padStart(6)}  [${xs.map((x) => x.toFixed(0)).join(', ')}]`);
  console.log(`  node CPU per GiB   ${median(cpuPerGiB).toFixed(2)} s  [${cpuPerGiB.map((x) => x.toFixed(2)).join(', ')}]`);
  console.log(`  ratio node/direct  ${(median(results['through the node']!) / median(results['direct from RGW']!)).toFixed(2)}`);
} finally {
  node?.kill('SIGTERM');
  for (const child of extraProcesses) child.kill('SIGTERM');
  rmSync(file, { force: true });
  await Promise.allSettled(services.map((s) => s.stop()));
}
