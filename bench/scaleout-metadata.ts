// Metadata reads on the scale-out backends against the embedded ones, by CPU per request: the
// same content in Stowage on SQLite + filesystem (embedded) and in Stowage on PostgreSQL + Ceph
// RGW (scale-out), the same workloads alternating between them, and around every run the CPU
// time (/proc/<pid>/stat utime+stime, whole process trees) of the Stowage node and of the
// PostgreSQL server (postmaster and every backend). CPU per request does not depend on what
// else the (shared) machine runs; req/s does, so both are printed.
//
//   node --import tsx bench/scaleout-metadata.ts [seconds=5] [rounds=2] [connections=16]
//
// Extra settings for both nodes: BENCH_STOWAGE_ENV="K=V K=V" (e.g. STOWAGE_WORKERS=2);
// for the scale-out node only: BENCH_PG_ENV="K=V" (e.g. STOWAGE_METADATA_POOL_SIZE=4).
// BENCH_PG_BASE=<dir>: a third node, scale-out from another checkout, measured alternately with
// the others (before/after comparisons on the same PostgreSQL:
// `git archive <commit> src package.json tsconfig.json | tar -x -C <dir>`, node_modules linked).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { adminQuery, databaseUrl, startCephRgw, startPostgres, type RunningService } from '../test/support/services.js';
import { freePort } from '../test/support/stowage.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 2);
const connections = Number(process.argv[4] ?? 16);
const TAGS = 500;
const REPOSITORIES = 300;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const envList = (s: string | undefined) => Object.fromEntries((s ?? '').split(/\s+/).filter(Boolean).map((kv) => kv.split('=', 2) as [string, string]));

const services: RunningService<unknown>[] = [];
const nodes: ChildProcess[] = [];
const dirs: string[] = [];

/** Ticks (1/100 s) of user + system time of a process and its reaped children; 0 when gone. */
function ticks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** Every live process whose ancestry leads to `rootPid`. */
function tree(rootPid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'latin1');
      parent.set(Number(name), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  return [...parent.keys()].filter((pid) => {
    for (let p: number | undefined = pid, i = 0; p !== undefined && i < 64; p = parent.get(p), i++) if (p === rootPid) return true;
    return false;
  });
}

/** CPU ticks per process of a tree, to diff around a run (processes born meanwhile count from 0). */
const snapshot = (rootPid: number) => new Map(tree(rootPid).map((pid) => [pid, ticks(pid)]));
function spent(before: Map<number, number>, rootPid: number): number {
  let total = 0;
  for (const pid of tree(rootPid)) total += ticks(pid) - (before.get(pid) ?? 0);
  return total / 100;
}

async function startNode(label: string, env: Record<string, string>, from = root): Promise<{ url: string; pid: number }> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), `stowage-meta-${label}-`));
  dirs.push(dataDir);
  const child = spawn(process.execPath, ['--import', 'tsx', join(from, 'src/cli/main.ts'), 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    cwd: from,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, STOWAGE_AUTH: 'none', STOWAGE_LOG_LEVEL: 'warn', STOWAGE_LOG_REQUESTS: 'false', STOWAGE_WORKERS: '1', ...envList(process.env.BENCH_STOWAGE_ENV), ...env },
  });
  nodes.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (i > 600) throw new Error(`${label}: the node did not become ready`);
    if ((await fetch(`${url}/readyz`).catch(() => null))?.status === 200) break;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return { url, pid: child.pid! };
}

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function must(res: Promise<Response>, what: string): Promise<Response> {
  const r = await res;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${await r.text()}`);
  return r;
}

/** One image (config + 3 layers) in bench/app:latest, TAGS tags in bench/tags, REPOSITORIES repositories. */
async function seed(url: string, content: { blobs: Buffer[]; manifest: Buffer }): Promise<void> {
  for (const blob of content.blobs) {
    await must(fetch(`${url}/v2/bench/app/blobs/uploads/?digest=${digestOf(blob)}`, { method: 'POST', body: new Uint8Array(blob), headers: { 'content-type': 'application/octet-stream' } }), 'blob');
  }
  const put = (repo: string, tag: string) =>
    must(fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: new Uint8Array(content.manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } }), 'manifest');
  await put('bench/app', 'latest');
  for (const blob of content.blobs) {
    await must(fetch(`${url}/v2/bench/tags/blobs/uploads/?mount=${digestOf(blob)}&from=bench/app`, { method: 'POST' }), 'mount');
  }
  for (let i = 0; i < TAGS; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => put('bench/tags', `t${String(i + j).padStart(4, '0')}`)));
  for (let i = 0; i < REPOSITORIES; i += 20) {
    await Promise.all(Array.from({ length: 20 }, (_, j) => must(fetch(`${url}/v2/bench/r${String(i + j).padStart(4, '0')}/blobs/uploads/?mount=${digestOf(content.blobs[0]!)}&from=bench/app`, { method: 'POST' }), 'mount')));
  }
}

interface Load {
  requests: number;
  rps: number;
  errors: number;
}

async function wrk(url: string, secs: number): Promise<Load> {
  const { stdout } = await run('wrk', ['-t', String(Math.min(2, connections)), '-c', String(connections), '-d', `${secs}s`, '--timeout', '10s', '-s', join(root, 'bench/lib/accept.lua'), url], {
    env: { ...process.env, WRK_ACCEPT: ACCEPT },
    timeout: (secs + 30) * 1000,
  });
  const j = JSON.parse(stdout.split('\n').find((l) => l.startsWith('WRKJSON '))!.slice(8));
  return { requests: j.requests, rps: j.requests / (j.duration_us / 1e6), errors: j.connect + j.read + j.write + j.status + j.timeout };
}

async function abHead(url: string, secs: number): Promise<Load> {
  const { stdout } = await run('ab', ['-i', '-k', '-q', '-c', String(connections), '-t', String(secs), '-n', '2000000', '-s', '10', url], { timeout: (secs + 30) * 1000 });
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? 0);
  return { requests: num(/Complete requests:\s+(\d+)/), rps: num(/Requests per second:\s+([\d.]+)/), errors: num(/Failed requests:\s+(\d+)/) + num(/Non-2xx responses:\s+(\d+)/) };
}

try {
  const [pg, s3] = await Promise.all([startPostgres(), startCephRgw()]);
  services.push(pg, s3);
  const scaleOutNode = async (label: string, from: string) => {
    await adminQuery(pg.info, `create database ${label}`);
    return startNode(
      label,
      {
        STOWAGE_METADATA_DRIVER: 'postgres',
        STOWAGE_METADATA_URL: databaseUrl(pg.info, label),
        STOWAGE_STORAGE_DRIVER: 's3',
        STOWAGE_S3_ENDPOINT: s3.info.endpoint,
        STOWAGE_S3_BUCKET: label.replace(/_/g, '-'),
        STOWAGE_S3_FORCE_PATH_STYLE: 'true',
        AWS_ACCESS_KEY_ID: s3.info.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.info.secretAccessKey,
        ...envList(process.env.BENCH_PG_ENV),
      },
      from,
    );
  };
  const scaleOut = await scaleOutNode('stowage_meta', root);
  const base = process.env.BENCH_PG_BASE ? await scaleOutNode('stowage_meta_base', resolve(process.env.BENCH_PG_BASE)) : undefined;
  const embedded = await startNode('embedded', {});
  const postmaster = Number((await adminQuery(pg.info, "select pid from pg_stat_activity where backend_type = 'checkpointer'")).rows[0].pid);
  const pgRoot = Number(readFileSync(`/proc/${postmaster}/stat`, 'latin1').split(') ')[1]!.split(' ')[1]);

  const blobs = [randomBytes(600), randomBytes(2000), randomBytes(3000), randomBytes(4000)];
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(blobs[0]!), size: blobs[0]!.length },
      layers: blobs.slice(1).map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(b), size: b.length })),
      annotations: { 'org.opencontainers.image.title': 'bench' },
    }),
  );
  await seed(embedded.url, { blobs, manifest });
  await seed(scaleOut.url, { blobs, manifest });
  if (base) await seed(base.url, { blobs, manifest });

  const workloads: { name: string; path: string; head?: boolean }[] = [
    { name: 'manifest GET by tag', path: '/v2/bench/app/manifests/latest' },
    { name: 'manifest HEAD by tag', path: '/v2/bench/app/manifests/latest', head: true },
    { name: 'manifest GET by digest', path: `/v2/bench/app/manifests/${digestOf(manifest)}` },
    { name: 'blob HEAD', path: `/v2/bench/app/blobs/${digestOf(blobs[1]!)}`, head: true },
    { name: `tag list n=100 (${TAGS} tags)`, path: '/v2/bench/tags/tags/list?n=100' },
    { name: `catalog n=100 (${REPOSITORIES + 2} repos)`, path: '/v2/_catalog?n=100' },
  ];
  const sides = [
    { label: 'embedded', node: embedded },
    { label: 'scale-out', node: scaleOut },
    ...(base ? [{ label: 'scale-out (base)', node: base }] : []),
  ];
  type Row = { rps: number[]; nodeUs: number[]; pgUs: number[] };
  const results = new Map<string, Row>();
  for (const w of workloads) {
    for (const side of sides) {
      const load = w.head ? abHead : wrk;
      await load(side.node.url + w.path, 1); // warm-up
      const row: Row = { rps: [], nodeUs: [], pgUs: [] };
      results.set(`${w.name}|${side.label}`, row);
    }
    for (let r = 0; r < rounds; r++) {
      for (const side of sides) {
        const load = w.head ? abHead : wrk;
        const nodeBefore = snapshot(side.node.pid);
        const pgBefore = snapshot(pgRoot);
        const result = await load(side.node.url + w.path, seconds);
        const nodeCpu = spent(nodeBefore, side.node.pid);
        const pgCpu = spent(pgBefore, pgRoot);
        if (result.errors > 0 || result.requests === 0) throw new Error(`${w.name} on ${side.label}: ${result.errors} errors of ${result.requests}`);
        const row = results.get(`${w.name}|${side.label}`)!;
        row.rps.push(result.rps);
        row.nodeUs.push((nodeCpu * 1e6) / result.requests);
        row.pgUs.push((pgCpu * 1e6) / result.requests);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const f0 = (x: number) => x.toFixed(0);
  console.log(`\nmetadata reads, c=${connections}, ${rounds} × ${seconds} s per side, node STOWAGE_WORKERS=${process.env.BENCH_STOWAGE_ENV ?? '1'}; CPU µs per request (median of rounds)`);
  console.log('| workload | side | req/s | ratio req/s | node µs/req | PostgreSQL µs/req | CPU ratio embedded/(node+PG) |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const w of workloads) {
    const e = results.get(`${w.name}|embedded`)!;
    for (const side of sides) {
      const r = results.get(`${w.name}|${side.label}`)!;
      const cpu = median(r.nodeUs) + (side.label === 'embedded' ? 0 : median(r.pgUs));
      console.log(
        `| ${w.name} | ${side.label} | ${f0(median(r.rps))} | ${(median(r.rps) / median(e.rps)).toFixed(2)} | ${f0(median(r.nodeUs))} | ${side.label === 'embedded' ? '—' : f0(median(r.pgUs))} | ${(median(e.nodeUs) / cpu).toFixed(2)} |`,
      );
    }
  }
} finally {
  for (const node of nodes) node.kill('SIGTERM');
  await new Promise((ok) => setTimeout(ok, 500));
  await Promise.allSettled(services.map((s) => s.stop()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
