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
 *
 * Metrics are the one thing each process counts for itself (requests it served): a scrape of
 * /metrics, which lands on any process, gathers every process's over the IPC channels (through
 * the first process) and adds them up.
 */

/** Set in a worker's environment: the pid of the process that started it. */
const PRIMARY_PID_ENV = 'STOWAGE_PRIMARY_PID';
/** Worker → first process: built, send me the socket. */
const READY_MESSAGE = 'stowage:ready-to-listen';
/** First process → worker, with the listening socket's handle. */
const LISTEN_MESSAGE = 'stowage:listen';
/** Worker → first process: accepting connections. */
const LISTENING_MESSAGE = 'stowage:listening';
/** First process → worker: send me your metrics (`id` pairs the answer with the request). */
const COLLECT_METRICS = 'stowage:collect-metrics';
/** Worker → first process: my metrics, for the request `id`. */
const COLLECTED_METRICS = 'stowage:collected-metrics';
/** Worker → first process: gather the metrics of every process of the node. */
const GATHER_METRICS = 'stowage:gather-metrics';
/** First process → worker: every process's metrics (or why not), for the request `id`. */
const GATHERED_METRICS = 'stowage:gathered-metrics';
/** How long a process waits for the others' metrics before the scrape fails. */
const METRICS_TIMEOUT_MS = 3_000;

interface MetricsMessage {
  type: string;
  id: number;
  metrics?: ProcessMetrics;
  all?: ProcessMetrics[];
  error?: string;
}

/** One process's metrics as prom-client's registry gives them (`getMetricsAsJSON()`). */
export type ProcessMetrics = unknown[];

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
  /** Workers that accept connections (so have built their app and may have counted requests). */
  private readonly serving = new Set<ChildProcess>();
  private readonly startFailures: number[] = [];
  private server: Server | undefined;
  private listening = 0;
  private stopping = false;
  private announce: () => void = () => undefined;
  private ownMetrics: (() => Promise<ProcessMetrics>) | undefined;
  private nextRequest = 0;
  private readonly metricsWaiting = new Map<number, Settle<ProcessMetrics>>();

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

  /** Where the first process's own metrics come from (its app's registry), once it is built. */
  shareMetrics(own: () => Promise<ProcessMetrics>): void {
    this.ownMetrics = own;
  }

  /**
   * The metrics of every process of the node: the first process's own and each serving worker's
   * (one still starting has counted nothing). Rejects when one of them does not answer in time,
   * so that a scrape fails rather than reporting totals that lack a process (a counter that
   * appears to go down).
   */
  async gatherMetrics(): Promise<ProcessMetrics[]> {
    if (!this.ownMetrics) throw new Error('the node is still starting');
    const live = [...this.serving].filter((child) => child.connected);
    return Promise.all([this.ownMetrics(), ...live.map((child) => this.collectFrom(child))]);
  }

  private collectFrom(child: ChildProcess): Promise<ProcessMetrics> {
    const id = ++this.nextRequest;
    return new Promise((resolve, reject) => {
      const settle = settleOnce(this.metricsWaiting, id, resolve, reject, METRICS_TIMEOUT_MS, () => `worker ${child.pid} did not send its metrics within ${METRICS_TIMEOUT_MS / 1000} s`);
      child.send({ type: COLLECT_METRICS, id } satisfies MetricsMessage, (error) => {
        if (error) settle.reject(new Error(`worker ${child.pid} is gone: ${error.message}`));
      });
    });
  }

  private onMetricsMessage(child: ChildProcess, message: MetricsMessage): void {
    if (message.type === COLLECTED_METRICS) {
      const waiting = this.metricsWaiting.get(message.id);
      if (message.metrics) waiting?.resolve(message.metrics);
      else waiting?.reject(new Error(`worker ${child.pid} could not read its metrics: ${message.error ?? 'no reason given'}`));
    } else if (message.type === GATHER_METRICS) {
      this.gatherMetrics().then(
        (all) => child.connected && child.send({ type: GATHERED_METRICS, id: message.id, all } satisfies MetricsMessage),
        (error: Error) => child.connected && child.send({ type: GATHERED_METRICS, id: message.id, error: error.message } satisfies MetricsMessage),
      );
    }
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
        this.serving.add(child);
        this.startFailures[index] = 0;
        if (++this.listening === this.count - 1) this.announce();
      } else if (isMetricsMessage(message)) {
        this.onMetricsMessage(child, message);
      }
    });
    // A failed send (the worker died meanwhile) shows up as its exit.
    child.on('error', (error) => this.logger.debug({ err: error, worker: index }, 'worker channel error'));
    child.on('exit', (code, signal) => {
      this.waiting.delete(child);
      this.serving.delete(child);
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

/**
 * In a worker: answers the first process's requests for this process's metrics, and returns how
 * this worker gets the metrics of every process of the node (through the first process).
 */
export function exchangeMetrics(own: () => Promise<ProcessMetrics>): () => Promise<ProcessMetrics[]> {
  const waiting = new Map<number, Settle<ProcessMetrics[]>>();
  let nextRequest = 0;
  const send = (message: MetricsMessage) => process.connected && process.send!(message);
  process.on('message', (message: unknown) => {
    if (!isMetricsMessage(message)) return;
    if (message.type === COLLECT_METRICS) {
      own().then(
        (metrics) => send({ type: COLLECTED_METRICS, id: message.id, metrics }),
        (error: Error) => send({ type: COLLECTED_METRICS, id: message.id, error: error.message }),
      );
    } else if (message.type === GATHERED_METRICS) {
      const request = waiting.get(message.id);
      if (message.all) request?.resolve(message.all);
      else request?.reject(new Error(message.error ?? 'the first process sent no metrics'));
    }
  });
  return () => {
    const id = ++nextRequest;
    return new Promise((resolve, reject) => {
      // Twice the first process's own wait for the workers: the answer comes back one hop later.
      const settle = settleOnce(waiting, id, resolve, reject, 2 * METRICS_TIMEOUT_MS, () => `the node's first process did not send the metrics within ${(2 * METRICS_TIMEOUT_MS) / 1000} s`);
      if (process.connected) send({ type: GATHER_METRICS, id });
      else settle.reject(new Error("the node's first process is gone"));
    });
  };
}

interface Settle<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** Registers request `id` in `waiting` until it is answered, fails, or times out, whichever comes first. */
function settleOnce<T>(waiting: Map<number, Settle<T>>, id: number, resolve: (value: T) => void, reject: (error: Error) => void, timeoutMs: number, timeoutMessage: () => string): Settle<T> {
  const timer = setTimeout(() => settle.reject(new Error(timeoutMessage())), timeoutMs);
  const done = () => {
    clearTimeout(timer);
    return waiting.delete(id);
  };
  const settle: Settle<T> = {
    resolve: (value) => done() && resolve(value),
    reject: (error) => done() && reject(error),
  };
  waiting.set(id, settle);
  return settle;
}

function isMetricsMessage(message: unknown): message is MetricsMessage {
  return typeof message === 'object' && message !== null && typeof (message as MetricsMessage).type === 'string' && typeof (message as MetricsMessage).id === 'number';
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
