import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

export interface RunningStowage {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  /** http://host:port */
  url: string;
  dataDir: string;
  process: ChildProcess;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  /** With `capture`: what the process wrote to stdout and stderr so far. */
  output?(): string;
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => ok(port));
    });
  });
}

/**
 * Starts `stowage serve` as a separate process (from the TypeScript sources) on a free loopback
 * port and waits until /readyz answers. Pass `dataDir` to restart on existing data.
 */
export async function startStowage(
  options: {
    dataDir?: string;
    env?: Record<string, string>;
    args?: string[];
    /** Collect stdout and stderr (see output()) instead of passing them through. */
    capture?: boolean;
    /** The server serves HTTPS (with a certificate the readiness check does not verify). */
    https?: boolean;
  } = {},
): Promise<RunningStowage> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'stowage-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'serve', '--listen', host, '--data-dir', dataDir, ...(options.args ?? [])],
    {
      cwd: root,
      // Open access unless the caller turns authentication on (env STOWAGE_AUTH: 'token'): the
      // data-plane suites test the registry API, the access suites pass their own settings.
      env: { ...process.env, STOWAGE_LOG_LEVEL: 'warn', STOWAGE_AUTH: 'none', ...options.env },
      stdio: ['ignore', options.capture ? 'pipe' : 'inherit', options.capture ? 'pipe' : 'inherit'],
    },
  );
  const captured: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => captured.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => captured.push(chunk));
  const scheme = options.https ? 'https' : 'http';
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  // Generous: the server is started through tsx (compiled on the fly), which takes seconds per
  // process on a loaded two-core machine, and multi-node tests start three at once.
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stowage exited with code ${child.exitCode} before it was ready`);
    try {
      if (await isReady(`${scheme}://${host}/readyz`)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`stowage did not become ready within 90 s${captured.length ? `; output:\n${Buffer.concat(captured).toString().slice(-2000)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    url: `${scheme}://${host}`,
    dataDir,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    output: () => Buffer.concat(captured).toString('utf8'),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Whether /readyz answers 200 (over HTTPS without verifying the certificate). */
function isReady(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, { rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(5000, () => req.destroy());
  });
}
