// Driving the real container clients (skopeo, podman, buildah, containerd's ctr, umoci) from tests.
//
// Every client's state is private to the test run: configuration, storage, auth files, temporary
// directories and caches live in a short run directory under /tmp (podman 4.3 refuses a --runroot
// longer than 50 characters). See ../shared/CLIENTS.md for the facts behind the choices here.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

export interface RunOptions {
  /** Full environment of the child (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin, which is closed afterwards. */
  input?: string | Buffer;
  /** Kills the child (SIGKILL) and rejects after this long. Default 180 s. */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

function tail(text: string, max = 6000): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command; resolves with its output, rejects with stdout/stderr on failure or timeout. */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 180_000;
  const display = [cmd, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, {
        env: options.env ?? process.env,
        cwd: options.cwd,
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      reject(err);
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${display}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0 && !timedOut) {
        resolve({ stdout, stderr });
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs} ms` : signal ? `killed by ${signal}` : `exited with code ${code}`;
      reject(
        new CommandError(
          `command ${why}: ${display}\n--- stdout ---\n${tail(stdout)}\n--- stderr ---\n${tail(stderr)}`,
          display,
          code,
          signal,
          stdout,
          stderr,
        ),
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

const EXTRA_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function findExecutable(binary: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_PATH];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

const toolCache = new Map<string, Promise<string>>();
let aptLock: Promise<unknown> = Promise.resolve();

/**
 * Returns the absolute path of `binary`. When it is missing and we are root, installs
 * `debianPackage` with apt-get; if that fails too, rejects with a message naming the package.
 * Never skips: a missing client is a test failure.
 */
export function ensureTool(binary: string, debianPackage: string): Promise<string> {
  let pending = toolCache.get(binary);
  if (!pending) {
    pending = locateOrInstall(binary, debianPackage);
    toolCache.set(binary, pending);
    pending.catch(() => toolCache.delete(binary));
  }
  return pending;
}

async function locateOrInstall(binary: string, debianPackage: string): Promise<string> {
  const found = findExecutable(binary);
  if (found) return found;
  const hint = `the "${binary}" tool is missing: install the Debian package "${debianPackage}" (apt-get install -y ${debianPackage})`;
  if (process.getuid?.() !== 0) throw new Error(`${hint}; not root, so the test cannot install it itself`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = async (): Promise<void> => {
    try {
      await run('apt-get', ['install', '-y', debianPackage], { env, timeoutMs: 600_000 });
    } catch {
      // The package lists may be stale or absent on a fresh machine.
      await run('apt-get', ['update'], { env, timeoutMs: 600_000 });
      await run('apt-get', ['install', '-y', debianPackage], { env, timeoutMs: 600_000 });
    }
  };
  // apt-get holds a lock: serialise our own installs.
  const attempt = aptLock.then(install);
  aptLock = attempt.catch(() => undefined);
  try {
    await attempt;
  } catch (err) {
    throw new Error(`${hint}; "apt-get install -y ${debianPackage}" failed:\n${(err as Error).message}`);
  }
  const installed = findExecutable(binary);
  if (!installed) throw new Error(`${hint}; the package was installed but "${binary}" is still not on PATH`);
  return installed;
}

/** Debian packages of the clients used by the end-to-end tests. */
export const TOOLS = {
  skopeo: 'skopeo',
  podman: 'podman',
  buildah: 'buildah',
  ctr: 'containerd',
  containerd: 'containerd',
  umoci: 'umoci',
  dockerd: 'docker.io',
  docker: 'docker.io',
  'docker-registry': 'docker-registry',
  unshare: 'util-linux',
} as const satisfies Record<string, string>;

export type ToolName = keyof typeof TOOLS;

export function ensureTools(...names: ToolName[]): Promise<string[]> {
  return Promise.all(names.map((name) => ensureTool(name, TOOLS[name])));
}

// ---------------------------------------------------------------------------------------------
// Private client environment
// ---------------------------------------------------------------------------------------------

export interface StoreRunOptions extends RunOptions {
  /**
   * Name of a separate containers-storage store (root, runroot and libpod tmpdir under the run
   * directory), e.g. "pull", so that pulling back an image does not reuse the layers of the store
   * that pushed it. Default: the main store of CONTAINERS_STORAGE_CONF.
   */
  store?: string;
}

export interface ClientEnv {
  /** Short run directory, e.g. /tmp/stw-Ab12Cd. */
  dir: string;
  /** Environment for the clients (process.env plus the private configuration). */
  env: NodeJS.ProcessEnv;
  /** containers-storage root and runroot shared by podman and buildah. */
  storageRoot: string;
  runRoot: string;
  policyPath: string;
  /**
   * True when skopeo/podman/buildah run in a private mount namespace (unshare -m) with scratch
   * directories over /var/lib and /var/tmp, so skopeo's root blob-info cache
   * (/var/lib/containers/cache) and podman's /var/tmp stay inside the run directory.
   */
  hermetic: boolean;
  /** Runs any command with the private environment. */
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  skopeo(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** podman with the vfs driver on a private store (options.store names an extra, separate one). */
  podman(args: readonly string[], options?: StoreRunOptions): Promise<RunResult>;
  /** buildah with the vfs driver on a private store (shared with podman's of the same name). */
  buildah(args: readonly string[], options?: StoreRunOptions): Promise<RunResult>;
  umoci(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Removes the run directory (after stopping anything that uses it). */
  cleanup(): Promise<void>;
}

let unshareWorks: boolean | undefined;

function probeUnshare(dir: string): boolean {
  if (unshareWorks !== undefined) return unshareWorks;
  if (process.getuid?.() !== 0 || !findExecutable('unshare')) return (unshareWorks = false);
  const probe = join(dir, 'unshare-probe');
  mkdirSync(probe, { recursive: true });
  const result = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /var/lib && mount --bind "$0" /var/tmp', probe],
    { stdio: 'ignore', timeout: 10_000 },
  );
  rmSync(probe, { recursive: true, force: true });
  return (unshareWorks = result.status === 0);
}

export interface ClientEnvOptions {
  /** host:port entries to mark insecure (plain HTTP) in registries.conf. */
  insecureRegistries: string[];
}

/**
 * A fresh /tmp/stw-xxxxxxxx directory: short (podman's runroot limit) and lowercase (podman names
 * images pulled from oci:PATH after the path, and image names must be lowercase).
 */
function makeRunDir(): string {
  for (;;) {
    const dir = `/tmp/stw-${randomBytes(4).toString('hex')}`;
    try {
      mkdirSync(dir, { mode: 0o700 });
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Creates a private, per-run client environment under /tmp/stw-xxxxxxxx. */
export async function createClientEnv(options: ClientEnvOptions): Promise<ClientEnv> {
  const dir = makeRunDir();
  const p = (...parts: string[]): string => join(dir, ...parts);
  for (const sub of ['home', 'tmp', 'xdg', 'docker', 'storage', 'run', 'libpod', 'networks', 'varlib', 'vartmp', 'registries.d']) {
    mkdirSync(p(sub), { recursive: true, mode: 0o700 });
  }
  mkdirSync(p('home', '.config', 'containers'), { recursive: true });

  const policy = JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }, null, 2);
  writeFileSync(p('policy.json'), policy);
  // containers/image also looks for the policy in $HOME/.config/containers before /etc.
  writeFileSync(p('home', '.config', 'containers', 'policy.json'), policy);

  const registries = [
    'unqualified-search-registries = []',
    'short-name-mode = "disabled"',
    '',
    ...options.insecureRegistries.flatMap((host) => ['[[registry]]', `location = ${JSON.stringify(host)}`, 'insecure = true', '']),
  ].join('\n');
  writeFileSync(p('registries.conf'), registries);

  writeFileSync(
    p('storage.conf'),
    ['[storage]', 'driver = "vfs"', `runroot = ${JSON.stringify(p('run'))}`, `graphroot = ${JSON.stringify(p('storage'))}`, ''].join('\n'),
  );

  writeFileSync(
    p('containers.conf'),
    [
      '[containers]',
      'log_driver = "k8s-file"',
      '',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = ${JSON.stringify(p('libpod', 'events.log'))}`,
      `image_copy_tmp_dir = ${JSON.stringify(p('tmp'))}`,
      '',
      '[network]',
      `network_config_dir = ${JSON.stringify(p('networks'))}`,
      '',
    ].join('\n'),
  );

  writeFileSync(p('auth.json'), JSON.stringify({ auths: {} }));
  writeFileSync(p('docker', 'config.json'), JSON.stringify({ auths: {} }));

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: p('home'),
    XDG_CONFIG_HOME: p('home', '.config'),
    XDG_DATA_HOME: p('home', '.local', 'share'),
    XDG_RUNTIME_DIR: p('xdg'),
    TMPDIR: p('tmp'),
    CONTAINERS_CONF: p('containers.conf'),
    CONTAINERS_REGISTRIES_CONF: p('registries.conf'),
    CONTAINERS_STORAGE_CONF: p('storage.conf'),
    REGISTRY_AUTH_FILE: p('auth.json'),
    DOCKER_CONFIG: p('docker'),
  };
  // Never let a developer's proxy settings intercept loopback traffic.
  for (const key of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY']) delete env[key];
  env.NO_PROXY = env.no_proxy = '127.0.0.1,localhost';

  const hermetic = probeUnshare(dir);
  const storeDirs = (store: string | undefined): { root: string; runroot: string; tmp: string } => {
    const dirs = store
      ? { root: p(`s-${store}`), runroot: p(`r-${store}`), tmp: p(`t-${store}`) }
      : { root: p('storage'), runroot: p('run'), tmp: p('libpod') };
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true, mode: 0o700 });
    return dirs;
  };
  const storageFlags = (store: string | undefined): string[] => {
    const d = storeDirs(store);
    return ['--root', d.root, '--runroot', d.runroot, '--storage-driver', 'vfs'];
  };

  const runIn = (cmd: string, args: readonly string[], o: RunOptions = {}): Promise<RunResult> =>
    run(cmd, args, { ...o, env: { ...env, ...o.env } });

  // Runs a containers/image client, in a private mount namespace when possible (see `hermetic`).
  const runContained = async (tool: ToolName, args: readonly string[], o: RunOptions = {}): Promise<RunResult> => {
    const bin = await ensureTool(tool, TOOLS[tool]);
    if (!hermetic) return runIn(bin, args, o);
    return runIn(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'lib=$0; tmp=$1; shift; mount --bind "$lib" /var/lib && mount --bind "$tmp" /var/tmp && exec "$@"',
        p('varlib'),
        p('vartmp'),
        bin,
        ...args,
      ],
      o,
    );
  };

  return {
    dir,
    env,
    storageRoot: p('storage'),
    runRoot: p('run'),
    policyPath: p('policy.json'),
    hermetic,
    run: runIn,
    skopeo: (args, o) => runContained('skopeo', ['--policy', p('policy.json'), '--registries.d', p('registries.d'), ...args], o),
    podman: (args, o = {}) =>
      runContained(
        'podman',
        [...storageFlags(o.store), '--tmpdir', storeDirs(o.store).tmp, '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...args],
        o,
      ),
    buildah: (args, o = {}) => runContained('buildah', [...storageFlags(o.store), ...args], o),
    umoci: async (args, o) => runIn(await ensureTool('umoci', TOOLS.umoci), args, o),
    async cleanup() {
      // vfs layers may contain read-only directories; rm -rf copes with them.
      await run('rm', ['-rf', '--one-file-system', dir], { timeoutMs: 120_000 }).catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------------------------

export interface RunningContainerd {
  /** gRPC socket path. */
  address: string;
  /** Default namespace of `ctr()`. */
  namespace: string;
  pid: number;
  /**
   * Runs `ctr --address SOCK --namespace NS ARGS…` (NS = options.namespace or the default), with
   * the `native` snapshotter (CONTAINERD_SNAPSHOTTER).
   */
  ctr(args: readonly string[], options?: RunOptions & { namespace?: string }): Promise<RunResult>;
  /** SIGTERM by PID (SIGKILL after 10 s) and waits for the exit. */
  stop(): Promise<void>;
}

/** Starts a private containerd (native snapshotter, no CRI) with everything under `dir`. */
export async function startContainerd(clientEnv: Pick<ClientEnv, 'env'>, dir: string): Promise<RunningContainerd> {
  const containerd = await ensureTool('containerd', TOOLS.containerd);
  const ctr = await ensureTool('ctr', TOOLS.ctr);
  mkdirSync(dir, { recursive: true });
  const address = join(dir, 'c.sock');
  const config = join(dir, 'config.toml');
  const disabled = [
    'io.containerd.grpc.v1.cri',
    'io.containerd.snapshotter.v1.aufs',
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.snapshotter.v1.overlayfs',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.internal.v1.opt',
    'io.containerd.internal.v1.tracing',
    'io.containerd.tracing.processor.v1.otlp',
  ];
  writeFileSync(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      `disabled_plugins = ${JSON.stringify(disabled)}`,
      '',
      '[grpc]',
      `  address = ${JSON.stringify(address)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '  level = "warn"',
      '[metrics]',
      '  address = ""',
      '',
      // Each namespace gets its own view of the content store, so a pull into a fresh namespace
      // really downloads every blob instead of borrowing it from another namespace.
      '[plugins."io.containerd.metadata.v1.bolt"]',
      '  content_sharing_policy = "isolated"',
      '',
    ].join('\n'),
  );
  const log: Buffer[] = [];
  const child = spawn(containerd, ['--config', config], {
    env: clientEnv.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => log.push(d));
  child.stderr?.on('data', (d: Buffer) => log.push(d));
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.once('error', () => undefined);
  const namespace = 'stowage-e2e';
  const ctrRun = (args: readonly string[], o: RunOptions & { namespace?: string } = {}): Promise<RunResult> =>
    run(ctr, ['--address', address, '--namespace', o.namespace ?? namespace, ...args], {
      ...o,
      env: { ...clientEnv.env, CONTAINERD_SNAPSHOTTER: 'native', ...o.env },
    });

  await waitUntilReady('containerd', child, log, 30_000, () => ctrRun(['version'], { timeoutMs: 5_000 }));
  const pid = child.pid!; // set: waitUntilReady checked that the daemon started
  return {
    address,
    namespace,
    pid,
    ctr: ctrRun,
    stop: () => stopDaemon(child, exited, 10_000),
  };
}

export interface RunningDocker {
  /** Runs `docker --host SOCK ARGS…` with a private DOCKER_CONFIG (its logins). */
  docker(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** SIGTERM (SIGKILL after 20 s) and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * A private Docker engine (Debian's docker.io) for the tests: its own socket, data, exec root and
 * empty daemon configuration under `dir`; vfs storage, and no bridge or iptables rules, because the
 * tests only move images (no containers run). Loopback registries are insecure (plain HTTP) by
 * Docker's default, which is what the tests use.
 */
export async function startDocker(clientEnv: Pick<ClientEnv, 'env'>, dir: string): Promise<RunningDocker> {
  const dockerd = await ensureTool('dockerd', TOOLS.dockerd);
  const docker = await ensureTool('docker', TOOLS.docker);
  mkdirSync(dir, { recursive: true });
  const host = `unix://${join(dir, 'd.sock')}`;
  const configFile = join(dir, 'daemon.json');
  writeFileSync(configFile, '{}\n');
  const log: Buffer[] = [];
  const child = spawn(
    dockerd,
    [
      '--host', host,
      '--config-file', configFile,
      '--data-root', join(dir, 'root'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'd.pid'),
      '--storage-driver', 'vfs',
      '--bridge', 'none',
      '--iptables=false',
      '--ip6tables=false',
      '--log-level', 'warn',
    ],
    { env: clientEnv.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => log.push(d));
  child.stderr?.on('data', (d: Buffer) => log.push(d));
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.once('error', () => undefined);
  const dockerRun = (args: readonly string[], o: RunOptions = {}): Promise<RunResult> =>
    run(docker, ['--host', host, ...args], { ...o, env: { ...clientEnv.env, DOCKER_CONFIG: join(dir, 'config'), ...o.env } });

  await waitUntilReady('dockerd (package docker.io)', child, log, 60_000, () => dockerRun(['version'], { timeoutMs: 5_000 }));
  return {
    docker: dockerRun,
    stop: () => stopDaemon(child, exited, 20_000),
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** Probes a daemon the tests started until it answers; fails with its log if it exits or times out. */
async function waitUntilReady(name: string, child: ChildProcess, log: Buffer[], timeoutMs: number, probe: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      throw new Error(`${name} exited before it was ready:\n${tail(Buffer.concat(log).toString('utf8'))}`);
    }
    try {
      await probe();
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${name} did not become ready within ${timeoutMs / 1000} s: ${(err as Error).message}\n${tail(Buffer.concat(log).toString('utf8'))}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** SIGTERM to a daemon the tests started, SIGKILL if it is still running after `graceMs`. */
async function stopDaemon(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** sha256:<hex> of a file, streamed. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(`sha256:${hash.digest('hex')}`));
  });
}

export function sha256(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
