import type { Command } from 'commander';
import { loadConfig, type ResolvedConfig } from '../config/load.js';
import { metadataMigrations } from '../metadata/sql/migrations.js';
import { openMetadataStore } from '../metadata/index.js';
import { copyBlobs } from '../migrate/copy-blobs.js';
import { copyMetadata } from '../migrate/copy-metadata.js';
import { ProgressBar } from '../migrate/progress.js';
import { SqliteSnapshot } from '../migrate/sqlite-snapshot.js';
import { FsBlobStore } from '../storage/fs/fs-blob-store.js';
import { openBlobStore } from '../storage/index.js';
import { formatBytes } from './gc.js';

interface MigrateOptions {
  fromConfig?: string;
  config?: string;
  fromDataDir?: string;
  dataDir?: string;
  toConfig?: string;
  concurrency: string;
}

/**
 * `stowage migrate`: copies a single-node installation (SQLite + filesystem) to the scale-out
 * backends (PostgreSQL + S3). Blobs first (each digest verified while it streams; those already
 * there are skipped), then every metadata table in one transaction — so a target that a node
 * serves from never names a blob it lacks, and an interrupted run is simply run again.
 */
export function addMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('copy a single-node installation (SQLite + filesystem) to PostgreSQL + S3; resumable, safe to re-run')
    .option('--from-config <file>', 'config file of the source installation')
    .option('-c, --config <file>', 'the same as --from-config')
    .option('--from-data-dir <dir>', 'data directory of the source installation')
    .option('--data-dir <dir>', 'the same as --from-data-dir')
    .option('--to-config <file>', 'config file of the target (else the STOWAGE_* and AWS_* environment)')
    .option('--concurrency <n>', 'blobs copied at once', '4')
    .action(async (options: MigrateOptions) => {
      try {
        await migrate(options);
      } catch (error) {
        process.stderr.write(`stowage migrate: ${(error as Error).message}\n`);
        process.exit(1);
      }
    });
}

async function migrate(options: MigrateOptions): Promise<void> {
  // The source is read from its file and flags only: the environment describes the target.
  const source = loadConfig({ file: options.fromConfig ?? options.config, flags: { dataDir: options.fromDataDir ?? options.dataDir }, env: {} });
  const target = loadConfig({ file: options.toConfig, env: process.env });
  checkModes(source, target);
  const concurrency = Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new Error(`--concurrency must be a whole number from 1 to 64, got ${options.concurrency}`);

  const snapshot = new SqliteSnapshot(source.metadataPath);
  try {
    checkSourceSchema(snapshot.migrations());
    // Brings the target's schema up to date (under the nodes' advisory lock), then lets go.
    await (await openMetadataStore(target)).close();
    const blobs = [...snapshot.blobs()];
    const from = new FsBlobStore(source.storagePath);
    const to = await openBlobStore(target);
    try {
      const bar = new ProgressBar('blobs');
      const started = Date.now();
      const copied = await copyBlobs(blobs, from, to, (p) => bar.update(p.bytes, p.totalBytes, `${p.blobs}/${p.totalBlobs} blobs, ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`), concurrency);
      bar.done();
      process.stdout.write(`blobs: ${copied.copied} copied and verified, ${copied.skipped} already there, ${formatBytes(copied.totalBytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    } finally {
      await Promise.all([from.close(), to.close()]);
    }
    const tablesBar = new ProgressBar('metadata');
    const result = await copyMetadata(snapshot, target.metadata.url!, (p) => tablesBar.update(p.tableIndex + (p.tableRows ? p.rows / p.tableRows : 1), p.tables, `${p.table} ${p.rows}/${p.tableRows}`));
    tablesBar.done();
    const rows = result.tables.reduce((a, t) => a + t.rows, 0);
    const removed = result.tables.reduce((a, t) => a + t.removed, 0);
    process.stdout.write(`metadata: ${result.tables.length} tables, ${rows} rows copied${removed ? `, ${removed} rows no longer in the source removed` : ''}\n`);
    process.stdout.write('migration complete: start the nodes with the target settings\n');
  } finally {
    snapshot.close();
  }
}

function checkModes(source: ResolvedConfig, target: ResolvedConfig): void {
  if (source.metadata.driver !== 'sqlite' || source.storage.driver !== 'filesystem') {
    throw new Error('the source must be a single-node installation (SQLite metadata, filesystem storage): give its --from-config or --from-data-dir');
  }
  const missing = [
    target.metadata.driver !== 'postgres' && 'metadata.driver: postgres (STOWAGE_METADATA_DRIVER=postgres) with metadata.url (STOWAGE_METADATA_URL)',
    target.storage.driver !== 's3' && 'storage.driver: s3 (STOWAGE_STORAGE_DRIVER=s3) with storage.s3.bucket (STOWAGE_S3_BUCKET)',
  ].filter(Boolean);
  if (missing.length > 0) throw new Error(`the target must be the scale-out backends; set ${missing.join(' and ')} in --to-config or the environment`);
}

/** The source must have run exactly the migrations this version knows (same schema as the target). */
function checkSourceSchema(ran: string[]): void {
  const known = Object.keys(metadataMigrations('sqlite'));
  const unknown = ran.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`the source database was migrated by a newer Stowage (${unknown.join(', ')}); run the migration with that version`);
  const pending = known.filter((name) => !ran.includes(name));
  if (pending.length > 0) {
    throw new Error(`the source database has not run migrations ${pending.join(', ')}: start the source installation once with this version of Stowage (it migrates at start), then run the migration again`);
  }
}
