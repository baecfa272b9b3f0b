import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';

/**
 * V8 flags for worker processes. A young generation of 2 MiB semi-spaces instead of Node 20's
 * 16 MiB: a worker's garbage is short-lived (a request's objects), so small semi-spaces cost
 * a few more, cheap scavenges but keep about 25 MB less resident per worker (measured in
 * bench/README.md, "Memory"). An operator's own setting (NODE_OPTIONS or node flags) wins.
 */
function workerExecArgv(): string[] {
  const own = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const flags = own.some((flag) => flag.startsWith('--max-semi-space-size')) ? [] : ['--max-semi-space-size=2'];
  return [...process.execArgv, ...flags];
}

/**
 * Runs `workers` HTTP worker processes that share the listening socket (the kernel spreads
 * connections between them). Every piece of state that must be shared lives in the metadata
 * database and the blob store, never in a worker's memory, so any worker can serve any request.
 * The first worker migrates the database before the others start; the primary restarts workers
 * that die, and on SIGTERM or SIGINT stops them gracefully.
 */
export async function runPrimary(config: ResolvedConfig, logger: Logger): Promise<void> {
  // Each worker accepts connections itself instead of the primary handing them over.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ execArgv: workerExecArgv() });
  let stopping = false;
  let listening = 0;
  const startFailures: number[] = [];
  // The first worker prepares the metadata database (migrations, stale leases) before it
  // listens, and only then do the others start: the primary itself never opens the database,
  // so it stays a small process (its memory counts in the benchmark's peak).
  const fork = (index: number, prepare = false) => {
    const worker = cluster.fork({ STOWAGE_WORKER_INDEX: String(index), ...(prepare ? { STOWAGE_PREPARE_METADATA: '1' } : {}) });
    let served = false;
    // The others start as soon as the database is ready, while the first builds its app.
    if (prepare) worker.on('message', (message) => {
      if (message === PREPARED_MESSAGE) for (let i = 1; i < config.workers; i++) fork(i);
    });
    worker.on('listening', (address) => {
      served = true;
      startFailures[index] = 0;
      listening++;
      if (listening === config.workers) {
        logger.info({ address: `${address.address ?? '0.0.0.0'}:${address.port}`, workers: config.workers, dataDir: config.dataDir }, 'stowage listening');
      }
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      const next = afterWorkerExit(served, served ? listening - 1 : listening, startFailures[index] ?? 0);
      if (next.action === 'stop') {
        logger.fatal({ worker: index, code, signal }, 'worker failed to start; stopping');
        stop('SIGTERM', 1);
        return;
      }
      if (served) listening--;
      else startFailures[index] = (startFailures[index] ?? 0) + 1;
      logger.error({ worker: index, code, signal, retryInMs: next.delayMs }, served ? 'worker died; starting a new one' : 'worker failed to start; starting it again');
      setTimeout(() => fork(index), next.delayMs).unref();
    });
  };
  fork(0, true);

  function stop(signal: NodeJS.Signals, exitCode = 0) {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
    let alive = workers.length;
    if (alive === 0) process.exit(exitCode);
    for (const worker of workers) {
      worker?.once('exit', () => {
        if (--alive === 0) process.exit(exitCode);
      });
      worker?.process.kill('SIGTERM');
    }
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Reload (TLS certificate and key): each worker re-reads them.
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) if (worker && !worker.isDead()) worker.process.kill('SIGHUP');
  });
}

/**
 * What the primary does when a worker exits: `served` whether it had listened, `listening` how
 * many others serve, `startFailures` how often this one failed to start in a row. A worker that
 * never started while no other serves hits what holds for all (port taken, bad data directory,
 * no database): stop, and leave restarting the node to its supervisor. If others serve, its
 * failure was a passing one (the database went away while it started): start it again, backing
 * off, rather than stop the workers that serve. One that served and died is replaced.
 */
export function afterWorkerExit(served: boolean, listening: number, startFailures: number): { action: 'stop' } | { action: 'restart'; delayMs: number } {
  if (served) return { action: 'restart', delayMs: 500 };
  if (listening === 0) return { action: 'stop' };
  return { action: 'restart', delayMs: Math.min(30_000, 1_000 * 2 ** (startFailures + 1)) };
}

/**
 * Before any server process starts: brings the database's schema up to date (once, so that
 * workers never race on migrations; PostgreSQL also serialises nodes with an advisory lock).
 * With embedded SQLite, also releases the upload write leases that a previous, dead process of
 * this node may still hold. Never with PostgreSQL: the other nodes are alive and hold theirs
 * (a dead node's leases simply expire).
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
  if (cluster.isWorker) process.send?.(PREPARED_MESSAGE);
}

/** What the first worker tells the primary once the database is ready for the others. */
const PREPARED_MESSAGE = 'stowage:metadata-prepared';

/** Whether this process prepares the metadata database: a single process, or the first worker. */
export function preparesMetadata(): boolean {
  return cluster.isPrimary || (process.env.STOWAGE_PREPARE_METADATA === '1' && cluster.isWorker);
}

/** In a worker: dies with the primary, so that a killed primary leaves no orphan serving. */
export function exitWithPrimary(): void {
  if (!cluster.isWorker) return;
  process.on('disconnect', () => process.exit(1));
  // Talking to a primary that is gone (e.g. while starting to listen) fails with EPIPE.
  cluster.worker?.on('error', () => process.exit(1));
}

/** Whether this process runs the background jobs (one process per node does). */
export function runsBackgroundJobs(): boolean {
  return !cluster.isWorker || process.env.STOWAGE_WORKER_INDEX === '0';
}
