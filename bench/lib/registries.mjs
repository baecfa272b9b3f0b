// Starting and stopping the two registries under test, with equivalent settings:
// filesystem storage, deletes enabled, no per-request logging, warn-level logs, and either no
// auth (the default) or Docker token auth on both (`auth` option; BENCH_AUTH=token in run.mjs).
//
// Hooks for variants (the S3 + PostgreSQL mode uses them; token auth has the `auth` options):
//   BENCH_STOWAGE_ARGS      extra arguments appended to `stowage serve` (split on whitespace)
//   BENCH_STOWAGE_ENV       extra environment for Stowage, "KEY=VALUE KEY2=VALUE2"
//   BENCH_DISTRIBUTION_ENV  extra environment for Distribution, e.g. REGISTRY_STORAGE=s3 ...
//                           (Distribution maps REGISTRY_<SECTION>_<KEY> onto its config file)
//   BENCH_MODE              a label for the variant, recorded in the results and file names
//   BENCH_PROFILE=1         run Stowage with `node --cpu-prof` (one .cpuprofile per process,
//                           written on graceful exit) into bench/.work/profiles/<timestamp>/
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, log, run, sleep } from './util.mjs';

export const DISTRIBUTION_BIN = process.env.BENCH_DISTRIBUTION_BIN ?? '/usr/bin/docker-registry';

export function parseEnvList(s) {
  const env = {};
  for (const part of (s ?? '').split(/\s+/).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i > 0) env[part.slice(0, i)] = part.slice(i + 1);
  }
  return env;
}

/** Installs Debian's docker-registry (and wrk, apache2-utils) when missing. */
export async function ensureTools() {
  const need = [];
  if (!existsSync(DISTRIBUTION_BIN)) need.push('docker-registry');
  if (!(await which('wrk'))) need.push('wrk');
  if (!(await which('ab'))) need.push('apache2-utils');
  if (need.length) {
    log(`installing ${need.join(', ')} from Debian packages`);
    const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const [cmd, ...pre] = [...sudo, 'apt-get'];
    let r = await run(cmd, [...pre, 'install', '-y', '--no-install-recommends', ...need], { env, timeoutMs: 600_000 });
    if (r.code !== 0) {
      await run(cmd, [...pre, 'update'], { env, timeoutMs: 600_000 });
      r = await run(cmd, [...pre, 'install', '-y', '--no-install-recommends', ...need], { env, timeoutMs: 600_000 });
    }
    if (r.code !== 0) throw new Error(`apt-get install ${need.join(' ')} failed:\n${r.stderr.slice(-2000)}`);
  }
  const v = await run(DISTRIBUTION_BIN, ['--version'], { timeoutMs: 10_000 });
  return { distribution: v.stdout.trim() };
}

async function which(name) {
  const r = await run('sh', ['-c', `command -v ${name}`], { timeoutMs: 5_000 });
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Distribution's `auth.token` section: tokens from the bench's issuer (lib/token-issuer.mjs). */
function distributionAuth(auth) {
  if (!auth) return '';
  return `auth:
  token:
    realm: ${auth.realm}
    service: ${auth.service}
    issuer: ${auth.issuer}
    rootcertbundle: ${auth.certFile}
`;
}

function distributionConfig(dataDir, host, auth) {
  return `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${dataDir}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: ${host}
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
${distributionAuth(auth)}`;
}

async function waitReady(child, url, logFile, timeoutMs, readyStatus) {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before ready; log:\n${tail(logFile, 30)}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === readyStatus) return;
    } catch { /* not listening yet */ }
    if (Date.now() > end) throw new Error(`not ready within ${timeoutMs / 1000} s; log:\n${tail(logFile, 30)}`);
    await sleep(100);
  }
}

export function tail(file, lines) {
  try { return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n'); } catch { return ''; }
}

function launch({ name, kind, label, cmd, args, env, dataDir, logFile, host, readyPath, readyStatus = 200, sampler, readyTimeoutMs }) {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
  const reg = {
    name, kind, label, host, url: `http://${host}`, dataDir, logFile, child, pid: child.pid,
    stats: sampler.track(child.pid),
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (reg.alive()) {
        try { process.kill(-child.pid, 'SIGTERM'); } catch { child.kill('SIGTERM'); }
        const r = await Promise.race([exited, sleep(15_000).then(() => null)]);
        if (!r) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } await exited; }
      }
      reg.stats.stop();
    },
    kill() { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } },
  };
  return { reg, ready: waitReady(child, `http://${host}${readyPath}`, logFile, readyTimeoutMs, readyStatus).then(() => reg) };
}

/** `auth`: {realm, service, issuer, certFile} of a token issuer, or null for open access. */
export async function startDistribution({ name, label, workDir, sampler, auth = null }) {
  const dataDir = join(workDir, name, 'data');
  mkdirSync(dataDir, { recursive: true });
  const host = `127.0.0.1:${await freePort()}`;
  const cfg = join(workDir, name, 'config.yml');
  writeFileSync(cfg, distributionConfig(dataDir, host, auth));
  const env = { ...process.env, ...parseEnvList(process.env.BENCH_DISTRIBUTION_ENV) };
  delete env.AWS_CA_BUNDLE; // 2.8's S3 driver panics on it (see DESIGN.md)
  const { reg, ready } = launch({
    name, kind: 'distribution', label, cmd: DISTRIBUTION_BIN, args: ['serve', cfg], env, dataDir,
    logFile: join(workDir, name, 'registry.log'), host, readyPath: '/v2/', sampler, readyTimeoutMs: 30_000,
    readyStatus: auth ? 401 : 200, // with token auth, /v2/ challenges until a client authenticates
  });
  try { return await ready; } catch (e) { reg.kill(); throw new Error(`${label}: ${e.message}`); }
}

/** `npm run build` in the project root; returns the compiled entry point. */
export async function buildStowage(root) {
  const entry = join(root, 'dist/cli/main.js');
  if (process.env.BENCH_SKIP_BUILD === '1' && existsSync(entry)) return entry;
  log('building Stowage (npm run build)');
  const r = await run('npm', ['run', 'build', '--silent'], { cwd: root, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`npm run build failed:\n${(r.stdout + r.stderr).slice(-3000)}`);
  if (!existsSync(entry)) throw new Error(`npm run build succeeded but ${entry} is missing`);
  return entry;
}

/** `auth`: {adminPassword} for token auth with its bootstrap `admin` user, or null for open access. */
export async function startStowage({ name, label, workDir, sampler, entry, profileDir, auth = null }) {
  const dataDir = join(workDir, name, 'data');
  mkdirSync(dataDir, { recursive: true });
  const host = `127.0.0.1:${await freePort()}`;
  const extraArgs = (process.env.BENCH_STOWAGE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const env = {
    ...process.env,
    STOWAGE_LOG_REQUESTS: 'false',
    STOWAGE_LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    // Open access like the Distribution registry it is compared with, or token auth on both: the
    // `admin` user created at first start (with this password) is the bench user; it may push
    // anywhere, and projects are created by its first push.
    ...(auth ? { STOWAGE_AUTH: 'token', STOWAGE_ADMIN_PASSWORD: auth.adminPassword } : { STOWAGE_AUTH: 'none' }),
    ...parseEnvList(process.env.BENCH_STOWAGE_ENV),
  };
  // --cpu-prof is refused in NODE_OPTIONS; as an execArgv it is inherited by cluster workers.
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const { reg, ready } = launch({
    name, kind: 'stowage', label, cmd: process.execPath,
    args: [...nodeArgs, entry, 'serve', '--listen', host, '--data-dir', dataDir, ...extraArgs],
    env, dataDir, logFile: join(workDir, name, 'registry.log'), host, readyPath: '/readyz', sampler,
    readyTimeoutMs: 60_000,
  });
  try { return await ready; } catch (e) { reg.kill(); throw new Error(`${label}: ${e.message}`); }
}
