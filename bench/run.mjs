#!/usr/bin/env node
// Stowage vs Distribution, side by side on this machine. See bench/README.md.
//
//   npm run bench                 full run (about 15 minutes)
//   QUICK=1 node bench/run.mjs    smoke run, about 2 minutes, small sizes
//
// Environment: QUICK=1, ROUNDS=n, BENCH_SECONDS=s (per wrk/ab run), BENCH_ONLY=id,id (workload id
// prefixes), BENCH_A=stowage|distribution (A side; "distribution" proves the harness with
// Distribution vs Distribution), BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep bench/.work data),
// BENCH_PROFILE=1 (node --cpu-prof for Stowage), BENCH_AUTH=token (Docker token auth on both),
// BENCH_MODE / BENCH_STOWAGE_ARGS / BENCH_STOWAGE_ENV / BENCH_DISTRIBUTION_ENV (variants, see
// lib/registries.mjs), BENCH_BIG_BLOB_MIB / BENCH_PUSH_MIB / BENCH_CHUNKED_PUSH_MIB (full-run blob
// sizes: 1024 / 1024 / 256).
import { mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, totalmem, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, sleep, freeBytes, GiB, run, fmtNum } from './lib/util.mjs';
import { createSampler } from './lib/procstat.mjs';
import { ensureTools, startDistribution, startStowage, buildStowage, tail } from './lib/registries.mjs';
import { createClient } from './lib/oci.mjs';
import { measureCeilings, startUploadSink } from './lib/ceilings.mjs';
import { sizes, prepareContent, seed, verify, verifyTokenRequired, workloads } from './lib/workloads.mjs';
import { startTokenIssuer } from './lib/token-issuer.mjs';
import { buildRows, writeReports, variantSuffix } from './lib/report.mjs';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(benchDir, '..');
const quick = process.env.QUICK === '1';
const aKind = process.env.BENCH_A ?? 'stowage';
const authMode = process.env.BENCH_AUTH ?? 'none';
const baseMode = process.env.BENCH_MODE ?? 'default';
// The token variant gets its own result files (latest-token.md, latest-scaleout-token.md, ...).
const mode = authMode === 'token' ? (baseMode === 'default' ? 'token' : `${baseMode}-token`) : baseMode;
const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
const sz = sizes(quick);
const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
const workDir = join(benchDir, '.work', stamp);
const resultsDir = join(benchDir, 'results');
const profileDir = process.env.BENCH_PROFILE === '1' ? join(benchDir, '.work', 'profiles', stamp) : null;
const regs = [];
const problems = [];
/** The push ceiling's server (started when a push workload runs), stopped by cleanup(). */
let sink = null;
let issuer = null;

function cleanup() {
  for (const r of regs) r.kill();
  issuer?.close();
  sink?.stop();
  if (process.env.BENCH_KEEP !== '1') rmSync(workDir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { log(`${sig}: stopping registries`); cleanup(); process.exit(130); });

function readLog(file) {
  try { return readFileSync(file, 'utf8').split('\n').slice(-200_000); } catch { return []; }
}

async function main() {
  if (!['stowage', 'distribution'].includes(aKind)) throw new Error(`BENCH_A must be stowage or distribution, not ${aKind}`);
  if (!['none', 'token'].includes(authMode)) throw new Error(`BENCH_AUTH must be none or token, not ${authMode}`);
  const labels = { A: aKind === 'stowage' ? 'Stowage' : 'Distribution (A)', B: aKind === 'stowage' ? 'Distribution' : 'Distribution (B)' };
  log(`${quick ? 'QUICK ' : ''}benchmark: ${labels.A} vs ${labels.B}, ${sz.rounds} rounds, mode ${mode}`);
  mkdirSync(workDir, { recursive: true });
  mkdirSync(resultsDir, { recursive: true });

  const versions = await ensureTools();
  // Disk: both registries hold the seeded blobs plus every round's pushes; the ceiling writes once.
  const need = 2 * (sz.bigBlob + sz.mediumBlob + sz.rounds * (sz.pushMono + sz.pushChunked)) + sz.bigBlob + 2 * GiB;
  const free = freeBytes(workDir);
  if (free < need) throw new Error(`need about ${(need / GiB).toFixed(1)} GiB free under ${workDir}, have ${(free / GiB).toFixed(1)} GiB (df)`);

  const entry = aKind === 'stowage' ? await buildStowage(root) : null;
  const stowageRev = (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, timeoutMs: 5000 }).catch(() => ({}))).stdout?.trim();

  log('machine ceilings');
  const ceilings = await measureCeilings({ quick, workDir, seconds: quick ? 2 : 5 });
  log(`ceilings: sha256 ${fmtNum(ceilings.sha256MBps)} MB/s, loopback GET ${fmtNum(ceilings.loopbackGetRps)} req/s, HEAD ${fmtNum(ceilings.loopbackHeadRps)} req/s, bulk ${fmtNum(ceilings.loopbackBulkMBps)} MB/s, disk ${fmtNum(ceilings.diskWriteMBps)} MB/s`);

  // Token auth: Distribution trusts the bench's issuer (in this process, so its CPU is nobody's);
  // Stowage issues its own tokens to its bootstrap admin. Fresh random passwords every run.
  const creds = {};
  let distributionAuth = null;
  let stowageAuth = null;
  if (authMode === 'token') {
    creds.distribution = { username: 'bench', password: randomBytes(18).toString('base64url') };
    creds.stowage = { username: 'admin', password: randomBytes(18).toString('base64url') };
    issuer = await startTokenIssuer({ dir: workDir, service: 'distribution-bench', issuer: 'stowage-bench-issuer', ...creds.distribution });
    distributionAuth = issuer;
    stowageAuth = { adminPassword: creds.stowage.password };
    log(`token auth: Distribution's token issuer at ${issuer.realm}; Stowage issues its own tokens`);
  }

  const sampler = createSampler();
  const A = aKind === 'stowage'
    ? await startStowage({ name: 'A', label: labels.A, workDir, sampler, entry, profileDir, auth: stowageAuth })
    : await startDistribution({ name: 'A', label: labels.A, workDir, sampler, auth: distributionAuth });
  regs.push(A);
  const B = await startDistribution({ name: 'B', label: labels.B, workDir, sampler, auth: distributionAuth });
  regs.push(B);
  log(`A ${labels.A} at ${A.url} (pid ${A.pid}); B ${labels.B} at ${B.url} (pid ${B.pid})`);
  const side = { A, B };
  const clients = {
    A: createClient(A.url, { credentials: creds[A.kind] ?? null }),
    B: createClient(B.url, { credentials: creds[B.kind] ?? null }),
  };

  log('generating content');
  const content = await prepareContent(sz);
  const seedSeconds = {};
  const broken = {};
  for (const k of ['A', 'B']) {
    log(`seeding ${side[k].label}: ${sz.tags} tags, ${sz.repos} repos, ${(sz.bigBlob / 2 ** 20)} MiB + ${(sz.mediumBlob / 2 ** 20)} MiB blobs`);
    try {
      seedSeconds[k] = await seed(clients[k], content, sz);
      await verify(clients[k], content);
      if (authMode === 'token') await verifyTokenRequired(clients[k], content);
      log(`seeded ${side[k].label} in ${seedSeconds[k].toFixed(1)} s`);
    } catch (e) {
      // Keep going: each workload then fails (or not) on its own, which says more than one line.
      problems.push(`${side[k].label}: seeding/verification failed: ${e.message.slice(0, 400)}`);
      log(`${side[k].label}: seeding/verification failed: ${e.message}`);
      if (!side[k].alive()) broken[k] = 'registry process exited during seeding';
    }
  }

  const results = {
    meta: {
      timestamp: new Date().toISOString(), quick, rounds: sz.rounds, mode, labels,
      kinds: { A: A.kind, B: B.kind }, auth: authMode,
      tokenIssuer: authMode === 'token' ? 'Distribution: the bench\'s issuer in the bench process (CPU not counted); Stowage: its own /auth/token' : null,
      cpu: cpus()[0]?.model ?? '?', cores: cpus().length,
      memGiB: Math.round(totalmem() / GiB), loadavgStart: loadavg().map((x) => Number(x.toFixed(2))), node: process.version, distributionVersion: versions.distribution,
      stowageRev: aKind === 'stowage' ? stowageRev : null,
      stowageArgs: process.env.BENCH_STOWAGE_ARGS ?? '', stowageEnv: process.env.BENCH_STOWAGE_ENV ?? '',
      distributionEnv: process.env.BENCH_DISTRIBUTION_ENV ?? '',
    },
    config: sz, ceilings, seedSeconds, workloads: [], resources: null, problems,
  };

  const selected = workloads(sz, content).filter((w) => !only.length || only.some((p) => w.id.startsWith(p)));
  // Push workloads also run, in every round, against the simplest durable push server (C):
  // the ceiling that the push figures are read against, measured under the same conditions. It
  // writes to the local disk, so only the default (filesystem) mode has it.
  let sinkClient = null;
  if (baseMode === 'default' && selected.some((w) => w.ceiling)) {
    sink = await startUploadSink(join(workDir, 'upload-sink'));
    sinkClient = createClient(sink.url);
    log(`push ceiling: trivial durable upload server at ${sink.url}`);
  }
  for (const w of selected) {
    log(`workload ${w.id}: ${w.title}`);
    const rec = { id: w.id, title: w.title, metrics: w.metrics.map(({ key, label, unit, better, target, note, chart }) => ({ key, label, unit, better, target, note, chart })), rounds: [], peakRssBytes: {}, peakPssBytes: {}, peakOwnBytes: {} };
    results.workloads.push(rec);
    for (const k of ['A', 'B']) side[k].stats.resetWindow();
    if (w.warmup) for (const k of ['A', 'B']) if (!broken[k]) await w.warmup(side[k], clients[k]).catch(() => {});
    for (let round = 1; round <= sz.rounds; round++) {
      const data = w.prepareRound ? await w.prepareRound(round) : undefined;
      const entry = { round, loadavg: Number(loadavg()[0].toFixed(2)) };
      for (const k of ['A', 'B']) {
        const reg = side[k];
        if (!broken[k] && !reg.alive()) broken[k] = `registry process exited (${reg.child.exitCode ?? reg.child.signalCode})`;
        if (broken[k]) { entry[k] = { error: broken[k] }; continue; }
        let cpu0, user0;
        try {
          // Token fetches happen here, outside the measurement: it carries cached tokens.
          if (w.auth) await w.auth(clients[k]);
          cpu0 = reg.stats.cpuSeconds();
          user0 = reg.stats.userSeconds();
          const r = await w.run(reg, clients[k], data);
          const cpu = reg.stats.cpuSeconds() - cpu0;
          r.cpuSec = cpu;
          r.cpuUserSec = reg.stats.userSeconds() - user0;
          if (r.requests) r.cpuMsPerReq = (cpu * 1000) / r.requests;
          if (r.images) r.cpuMsPerImage = (cpu * 1000) / r.images;
          entry[k] = r;
        } catch (e) {
          entry[k] = { error: e.message.slice(0, 500) };
          problems.push(`${reg.label} ${w.id} round ${round}: ${e.message.slice(0, 300)}`);
        }
        if (w.cleanup) await w.cleanup(reg, clients[k], data).catch(() => {});
        if (w.pauseMs) await sleep(w.pauseMs);
      }
      if (w.ceiling && sinkClient) {
        try {
          entry.C = await w.run(sink, sinkClient, data);
        } catch (e) {
          entry.C = { error: e.message.slice(0, 500) };
          problems.push(`push ceiling ${w.id} round ${round}: ${e.message.slice(0, 300)}`);
        }
        if (w.pauseMs) await sleep(w.pauseMs);
      }
      const main = w.metrics[0].key;
      log(`  round ${round}: A ${fmtNum(entry.A?.[main])} B ${fmtNum(entry.B?.[main])}${entry.C ? ` ceiling ${fmtNum(entry.C[main])}` : ''} ${w.metrics[0].unit}${entry.A?.error ? ` A error: ${entry.A.error.slice(0, 120)}` : ''}${entry.B?.error ? ` B error: ${entry.B.error.slice(0, 120)}` : ''}`);
      rec.rounds.push(entry);
    }
    for (const k of ['A', 'B']) {
      rec.peakRssBytes[k] = side[k].stats.windowPeakRss();
      rec.peakPssBytes[k] = side[k].stats.windowPeakPss();
      rec.peakOwnBytes[k] = side[k].stats.windowPeakOwn();
    }
  }

  const resources = {};
  for (const k of ['A', 'B']) {
    const s = side[k].stats;
    resources[k] = { peakRssBytes: s.peakRss(), peakPssBytes: s.peakPss(), peakOwnBytes: s.peakOwn(), hwmSumBytes: s.hwmSum(), cpuSeconds: s.cpuSeconds(), processes: s.processes(), samples: s.samples(), alive: side[k].alive() };
  }
  results.resources = resources;
  results.meta.loadavgEnd = loadavg().map((x) => Number(x.toFixed(2)));
  if (Math.max(results.meta.loadavgStart[0], results.meta.loadavgEnd[0]) > 1.5 * cpus().length) {
    problems.push(`machine busy: load average ${results.meta.loadavgStart[0]} at start, ${results.meta.loadavgEnd[0]} at the end on ${cpus().length} cores; expect noisy figures and read the spread`);
  }
  for (const k of ['A', 'B']) {
    await side[k].stop();
    results[`log${k}`] = tail(side[k].logFile, 40);
    // Distribution logs every 4xx answer at level error; a 404 for a blob or manifest that a
    // client probes before pushing is normal, so those lines are not problems. Neither is the
    // warning for a request without a token: that 401 is the first step of the token dance.
    const lines = readLog(side[k].logFile).filter((l) => /error|panic|fatal|"level":(50|60)/i.test(l)
      && !/response completed with error.*err\.code="(blob unknown|manifest unknown|blob upload unknown)"/.test(l)
      && !/level=warning msg="error authorizing context: authorization token required"/.test(l));
    if (lines.length) problems.push(`${side[k].label} log: ${lines.length} error lines, e.g. ${lines[0].slice(0, 400)}`);
  }
  await sampler.close();
  results.meta.tokensFetched = { A: clients.A.tokensFetched(), B: clients.B.tokensFetched() };
  for (const c of Object.values(clients)) c.close();
  sinkClient?.close();
  await sink?.stop();
  sink = null;
  await issuer?.close();
  issuer = null;

  const suffix = variantSuffix(results.meta, only.length > 0);
  const jsonFile = join(resultsDir, `${stamp}${suffix}.json`);
  results.rows = buildRows(results);
  writeFileSync(jsonFile, JSON.stringify(results, null, 2));
  const { md, svgName, readmeUpdated } = writeReports(results, {
    resultsDir, suffix, jsonRel: jsonFile.slice(root.length + 1), readme: join(benchDir, 'README.md'),
  });
  if (readmeUpdated) log('updated the results section of bench/README.md');
  console.log('\n' + md);
  if (profileDir) log(`CPU profiles of Stowage in ${profileDir} (open in Chrome DevTools or speedscope)`);
  log(`wrote ${jsonFile}, bench/results/latest${suffix}.md, bench/results/${svgName}`);
}

try {
  await main();
  cleanup();
} catch (e) {
  console.error(`benchmark failed: ${e.stack ?? e.message}`);
  cleanup();
  process.exit(1);
}
