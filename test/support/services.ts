// Backing services for the scale-out tests: one PostgreSQL server and one Ceph RADOS Gateway
// (S3) per test run, started by the global setup (test/support/global-setup.ts) and stopped in its
// teardown. Test files get the connection details through vitest's provide/inject and make their
// own database or bucket, so that no two files (or tests) share state.
//
// A service that cannot start does not stop the run: the setup records why, and every test that
// needs it fails with that message (naming the Debian package to install). Nothing is skipped.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { inject } from 'vitest';
import { freePort } from './stowage.js';

const execFileAsync = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
/** ../shared/services/ceph-rgw.sh, beside the repository (as in CI). */
export const CEPH_RGW_SCRIPT = resolve(root, '../shared/services/ceph-rgw.sh');

export interface PostgresInfo {
  /** Superuser URL of the `postgres` database (trust authentication, loopback only). */
  adminUrl: string;
  host: string;
  port: number;
}

export interface S3Info {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export type ServiceState<T> = { ok: true; info: T } | { ok: false; error: string };

export interface ServicesInfo {
  postgres: ServiceState<PostgresInfo>;
  s3: ServiceState<S3Info>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: ServicesInfo;
  }
}

// ---------------------------------------------------------------------------------------------
// In test files
// ---------------------------------------------------------------------------------------------

/** The run's PostgreSQL server; throws (failing the test) with the reason it is unavailable. */
export function postgresService(): PostgresInfo {
  const state = inject('services').postgres;
  if (!state.ok) throw new Error(`PostgreSQL is not available for this test run: ${state.error}`);
  return state.info;
}

/** The run's S3 server (Ceph RGW); throws (failing the test) with the reason it is unavailable. */
export function s3Service(): S3Info {
  const state = inject('services').s3;
  if (!state.ok) throw new Error(`the S3 server (Ceph RGW) is not available for this test run: ${state.error}`);
  return state.info;
}

export function uniqueName(label: string): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 30) || 't';
  return `${clean}-${randomBytes(4).toString('hex')}`;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Drops the database (closing whatever still uses it). */
  drop(): Promise<void>;
}

/** A new, empty database on the run's PostgreSQL server. */
export async function createDatabase(label: string): Promise<TestDatabase> {
  const info = postgresService();
  const name = uniqueName(label).replace(/-/g, '_');
  await adminQuery(info, `create database "${name}"`);
  return {
    name,
    url: databaseUrl(info, name),
    drop: async () => {
      await adminQuery(info, `drop database if exists "${name}" with (force)`);
    },
  };
}

export function databaseUrl(info: PostgresInfo, database: string): string {
  return `postgres://postgres@${info.host}:${info.port}/${database}`;
}

/** Runs one statement as the superuser on the `postgres` database. */
export async function adminQuery(info: PostgresInfo, text: string, database = 'postgres'): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl(info, database) });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

/** A bucket name for this test (S3 rules: lowercase, digits and hyphens, 3–63 characters). */
export function uniqueBucket(label: string): string {
  return `stowage-${uniqueName(label)}`;
}

/** Settings for `stowage serve` on the run's services (environment variables). */
export function scaleOutEnv(databaseUrlValue: string, bucket: string, extra: Record<string, string> = {}): Record<string, string> {
  const s3 = s3Service();
  return {
    STOWAGE_METADATA_DRIVER: 'postgres',
    STOWAGE_METADATA_URL: databaseUrlValue,
    STOWAGE_STORAGE_DRIVER: 's3',
    STOWAGE_S3_ENDPOINT: s3.endpoint,
    STOWAGE_S3_REGION: s3.region,
    STOWAGE_S3_BUCKET: bucket,
    STOWAGE_S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// In the global setup
// ---------------------------------------------------------------------------------------------

export interface RunningService<T> {
  info: T;
  stop(): Promise<void>;
}

/** Debian's PostgreSQL server binaries (initdb, pg_ctl), newest major version first. */
function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')) && existsSync(join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

async function ensurePostgresBinaries(): Promise<string> {
  const found = postgresBinDir();
  if (found) return found;
  const hint = 'PostgreSQL server binaries (initdb, pg_ctl) are missing: install the Debian package "postgresql" (apt-get install -y postgresql)';
  if (process.getuid?.() !== 0) throw new Error(`${hint}; not root, so the test setup cannot install it itself`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await execFileAsync('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql'], { env, maxBuffer: 64 << 20 });
  } catch {
    try {
      await execFileAsync('apt-get', ['update'], { env, maxBuffer: 64 << 20 });
      await execFileAsync('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql'], { env, maxBuffer: 64 << 20 });
    } catch (error) {
      throw new Error(`${hint}; "apt-get install -y postgresql" failed: ${(error as Error).message}`);
    }
  }
  const installed = postgresBinDir();
  if (!installed) throw new Error(`${hint}; the package was installed but no /usr/lib/postgresql/*/bin/initdb appeared`);
  return installed;
}

/** Runs a PostgreSQL binary as the `postgres` user when we are root (the server refuses root). */
async function asPostgres(bin: string, args: string[]): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    await execFileAsync(cmd, argv, { maxBuffer: 16 << 20, timeout: 120_000 });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${[cmd, ...argv].join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/**
 * A throwaway PostgreSQL server on a free loopback port, its data in a new temporary directory
 * (tuned for tests: no fsync). Stopped (immediately) and removed by `stop`.
 */
export async function startPostgres(): Promise<RunningService<PostgresInfo>> {
  const bin = await ensurePostgresBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'stowage-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = await postgresUser();
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const port = await freePort();
  const data = join(dir, 'data');
  try {
    await asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8']);
    const options = [
      `-p ${port}`,
      `-k ${dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c max_connections=300',
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
    ].join(' ');
    await asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-o', options, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const pgCtl = `${asRoot ? 'runuser -u postgres -- ' : ''}${join(bin, 'pg_ctl')} -D ${data} -m immediate -w stop`;
  stopWhenOrphaned(`${pgCtl}; rm -rf ${dir}`);
  return {
    info: { adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, host: '127.0.0.1', port },
    async stop() {
      await asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  try {
    const { stdout } = await execFileAsync('id', ['-u', 'postgres']);
    const { stdout: g } = await execFileAsync('id', ['-g', 'postgres']);
    return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
  } catch {
    throw new Error('the "postgres" user does not exist: install the Debian package "postgresql" (apt-get install -y postgresql)');
  }
}

/**
 * A one-node Ceph cluster with a RADOS Gateway on a free loopback port, via
 * ../shared/services/ceph-rgw.sh (which installs its Debian packages when missing and we are
 * root). Always stop it: its daemons outlive the process that started them.
 */
export async function startCephRgw(): Promise<RunningService<S3Info>> {
  if (!existsSync(CEPH_RGW_SCRIPT)) throw new Error(`${CEPH_RGW_SCRIPT} is missing (it comes with the shared/ directory beside the repository)`);
  // Short: Ceph's admin socket paths must stay under 108 bytes.
  const dir = join('/tmp', `stw-rgw-${randomBytes(4).toString('hex')}`);
  const port = await freePort();
  let output: string;
  try {
    output = await runScript(['start', dir, String(port)]);
  } catch (error) {
    await runScript(['stop', dir, '--purge']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `${(error as Error).message}\n(the S3 tests need Ceph's Debian packages ceph-mon, ceph-osd, radosgw, ceph-common and ceph-base: apt-get install -y ceph-mon ceph-osd radosgw ceph-common ceph-base)`,
    );
  }
  const line = output.trim().split('\n').pop() ?? '';
  const values = Object.fromEntries(line.split(/\s+/).map((pair) => pair.split('=', 2) as [string, string]));
  if (!values.S3_ENDPOINT || !values.S3_ACCESS_KEY_ID || !values.S3_SECRET_ACCESS_KEY) {
    await runScript(['stop', dir, '--purge']).catch(() => undefined);
    throw new Error(`ceph-rgw.sh start printed no endpoint line: ${output.slice(-500)}`);
  }
  stopWhenOrphaned(`bash ${CEPH_RGW_SCRIPT} stop ${dir} --purge; rm -rf ${dir}`);
  return {
    info: {
      endpoint: values.S3_ENDPOINT,
      accessKeyId: values.S3_ACCESS_KEY_ID,
      secretAccessKey: values.S3_SECRET_ACCESS_KEY,
      region: values.S3_REGION ?? 'us-east-1',
    },
    async stop() {
      await runScript(['stop', dir, '--purge']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The services outlive the process that started them (their own sessions), so a test run that
 * is killed before its teardown would leave them running: a detached watchdog runs `stop` once
 * this process is gone. (After a normal teardown its `stop` finds nothing left to do.)
 */
function stopWhenOrphaned(stop: string): void {
  const watchdog = spawn('bash', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 2; done; ${stop}`], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
}

function runScript(args: string[]): Promise<string> {
  return new Promise((ok, fail) => {
    const child = spawn('bash', [CEPH_RGW_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      if (code === 0) ok(stdout);
      else fail(new Error(`ceph-rgw.sh ${args[0]} exited with code ${code}: ${Buffer.concat(err).toString().slice(-3000)}`));
    });
  });
}
