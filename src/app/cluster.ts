import { fork, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';

/**
 * A node's processes. The process that `stowage serve` starts serves requests itself and, with
 * `workers` > 1, starts `workers - 1` more worker processes that accept connections on its
 * listening socket (passed to them over the IPC channel; the kernel spreads connections between
 * all of them). Every piece of state that must be shared lives in the metadata database and the
 * blob store, never in a process's memory, so any process can serve any request.
 *
 * Why the first process serves instead of only supervising: a supervisor that serves nothing
 * still holds a Node runtime and Stowage's configuration code, about 30 MB (a fifth of a
 * two-worker node's memory; bench/README.md, "Memory"). What it would add — surviving a crash of
 * the serving code — the node's own supervisor (systemd, Kubernetes) gives anyway by restarting
 * the node; a crashed worker is still replaced here, while the others serve.
 */

/** Set in a worker's environment: the pid of the process that started it. */
const PRIMARY_PID_ENV = 'STOWAGE_PRIMARY_PID';
/** Worker → first process: built, send me the socket. */
const READY_MESSAGE = 'stowage:ready-to-listen';
/** First process → worker, with the listening socket's handle. */
const LISTEN_MESSAGE = 'stowage:listen';
/** Worker → first process: accepting connections. */
const LISTENING_MESSAGE = 'stowage:listening';

// Decided once at start, from what the first process set: a worker orphaned while it loads its
// modules must still know it is one (and exit), not become a node of its own.
const primaryPid = Number(process.env[PRIMARY_PID_ENV] ?? 0);
const startedAsWorker = primaryPid > 0 && typeof process.send === 'function';
// Not inherited by what a worker may start.
delete process.env[PRIMARY_PID_ENV];

/** Whether this process is a worker started by a node's first process. */
export function isWorker(): boolean {
  return startedAsWorker;
}

/** Whether this process runs the background jobs and prepares the database (one per node: the first). */
export function runsBackgroundJobs(): boolean {
  return !isWorker();
}

/**
 * In the first process: starts the other workers and keeps them running. `share(server)` hands
 * them the listening socket once the first process listens (workers that are ready before wait
 * for it); a worker that dies is replaced; `stop()` stops them gracefully.
 */
export class Workers {
  /** Resolves once every worker has accepted connections (the first time). */
  readonly allListening: Promise<void>;
  private readonly children = new Map<number, ChildProcess>();
  private readonly waiting = new Set<ChildProcess>();
  private readonly startFailures: number[] = [];
  private server: Server | undefined;
  private listening = 0;
  private stopping = false;
  private announce: () => void = () => undefined;

  constructor(
    private readonly count: number,
    private readonly logger: Logger,
  ) {
    this.allListening = new Promise((resolve) => (this.announce = resolve));
  }

  start(): void {
    for (let index = 1; index < this.count; index++) this.fork(index);
  }

  /** The first process listens on `server`: the workers accept on the same socket. */
  share(server: Server): void {
    this.server = server;
    for (const child of this.waiting) this.sendSocket(child);
    this.waiting.clear();
  }

  /** Passes SIGHUP (reload the TLS files) on to every worker. */
  reload(): void {
    for (const child of this.children.values()) child.kill('SIGHUP');
  }

  /** Sends every worker SIGTERM; resolves when all have exited. */
  stop(): Promise<void> {
    this.stopping = true;
    const alive = [...this.children.values()].filter((child) => child.exitCode === null && child.signalCode === null);
    return Promise.all(
      alive.map(
        (child) =>
          new Promise<void>((resolve) => {
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    ).then(() => undefined);
  }

  private fork(index: number): void {
    const child = fork(process.argv[1]!, process.argv.slice(2), {
      env: { ...process.env, [PRIMARY_PID_ENV]: String(process.pid) },
      // The same node flags (e.g. tsx in tests); the young generation is set up by young-generation.ts.
      execArgv: process.execArgv,
    });
    this.children.set(index, child);
    let served = false;
    child.on('message', (message) => {
      if (message === READY_MESSAGE) {
        if (this.server) this.sendSocket(child);
        else this.waiting.add(child);
      } else if (message === LISTENING_MESSAGE && !served) {
        served = true;
        this.startFailures[index] = 0;
        if (++this.listening === this.count - 1) this.announce();
      }
    });
    // A failed send (the worker died meanwhile) shows up as its exit.
    child.on('error', (error) => this.logger.debug({ err: error, worker: index }, 'worker channel error'));
    child.on('exit', (code, signal) => {
      this.waiting.delete(child);
      if (this.children.get(index) === child) this.children.delete(index);
      if (served) this.listening--;
      if (this.stopping) return;
      const failures = served ? 0 : (this.startFailures[index] ?? 0);
      const delayMs = restartDelay(served, failures);
      if (!served) this.startFailures[index] = failures + 1;
      this.logger.error({ worker: index, code, signal, retryInMs: delayMs }, served ? 'worker died; starting a new one' : 'worker failed to start; starting it again');
      setTimeout(() => {
        if (!this.stopping) this.fork(index);
      }, delayMs).unref();
    });
  }

  private sendSocket(child: ChildProcess): void {
    // The raw handle of the listening socket: the worker's own HTTP server listens on it.
    const handle = (this.server as unknown as { _handle: object | null })._handle;
    if (!handle || !child.connected) return;
    child.send(LISTEN_MESSAGE, handle as Parameters<ChildProcess['send']>[1]);
  }
}

/**
 * How long to wait before starting a worker again: one that served and died is replaced soon;
 * one that failed to start (the database away while it started, say) is retried with a
 * backoff that doubles up to 30 s, while the first process and the other workers serve.
 */
export function restartDelay(served: boolean, startFailures: number): number {
  if (served) return 500;
  return Math.min(30_000, 1_000 * 2 ** (startFailures + 1));
}

/** In a worker, once its app is built: the first process's listening socket. */
export function receiveListeningSocket(): Promise<object> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown, handle: unknown) => {
      if (message !== LISTEN_MESSAGE || !handle) return;
      process.off('message', onMessage);
      resolve(handle);
    };
    process.on('message', onMessage);
    process.send!(READY_MESSAGE);
  });
}

/** In a worker: tells the first process it accepts connections. */
export function reportListening(): void {
  process.send?.(LISTENING_MESSAGE);
}

/** In a worker: dies with the first process, so that a killed node leaves no orphan serving. */
export function exitWithPrimary(): void {
  if (!isWorker()) return;
  // Gone already while this worker loaded its modules: the event has passed.
  if (!process.connected || process.ppid !== primaryPid) process.exit(1);
  process.on('disconnect', () => process.exit(1));
  // And in case the channel's end goes unnoticed: a worker whose parent changed was orphaned.
  setInterval(() => process.ppid !== primaryPid && process.exit(1), 1_000).unref();
}

/**
 * Before the node serves: brings the database's schema up to date (once, so that workers never
 * race on migrations; PostgreSQL also serialises nodes with an advisory lock). With embedded
 * SQLite, also releases the upload write leases that a previous, dead process of this node may
 * still hold. Never with PostgreSQL: the other nodes are alive and hold theirs (a dead node's
 * leases simply expire).
 */
export async function prepareEmbeddedMetadata(config: ResolvedConfig, logger: Logger): Promise<void> {
  const { openMetadataStore } = await import('../metadata/index.js');
  const metadata = await openMetadataStore(config);
  try {
    if (config.metadata.driver === 'sqlite') {
      const released = await metadata.uploads.releaseAllLeases();
      if (released > 0) logger.info({ released }, 'released upload leases left by a previous process');
    }
  } finally {
    await metadata.close();
  }
}
