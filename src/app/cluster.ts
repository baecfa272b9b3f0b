import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/load.js';
import { openMetadataStore } from '../metadata/index.js';

/**
 * Runs `workers` HTTP worker processes that share the listening socket (the kernel spreads
 * connections between them). Every piece of state that must be shared lives in the metadata
 * database and the blob store, never in a worker's memory, so any worker can serve any request.
 * The primary migrates the database once before forking, restarts workers that die, and on
 * SIGTERM or SIGINT stops them gracefully.
 */
export async function runPrimary(config: ResolvedConfig, logger: Logger): Promise<void> {
  // Each worker accepts connections itself instead of the primary handing them over.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let stopping = false;
  let listening = 0;
  const fork = (index: number) => {
    const worker = cluster.fork({ STOWAGE_WORKER_INDEX: String(index) });
    let served = false;
    worker.on('listening', (address) => {
      served = true;
      listening++;
      if (listening === config.workers) {
        logger.info({ address: `${address.address ?? '0.0.0.0'}:${address.port}`, workers: config.workers, dataDir: config.dataDir }, 'stowage listening');
      }
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      if (!served) {
        // A worker that cannot start (port taken, bad data directory) will not start next time.
        logger.fatal({ worker: index, code, signal }, 'worker failed to start; stopping');
        stop('SIGTERM', 1);
        return;
      }
      logger.error({ worker: index, code, signal }, 'worker died; starting a new one');
      listening--;
      setTimeout(() => fork(index), 500).unref();
    });
  };
  for (let i = 0; i < config.workers; i++) fork(i);

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
 * Before any server process starts: brings the database's schema up to date (once, so that
 * workers never race on migrations; PostgreSQL also serialises nodes with an advisory lock).
 * With embedded SQLite, also releases the upload write leases that a previous, dead process of
 * this node may still hold. Never with PostgreSQL: the other nodes are alive and hold theirs
 * (a dead node's leases simply expire).
 */
export async function prepareEmbeddedMetadata(config: ResolvedConfig, logger: Logger): Promise<void> {
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
