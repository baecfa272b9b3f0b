import type { Command } from 'commander';
import { ControlError } from '../control/errors.js';
import { garbagePreviewInput } from '../control/garbage.js';
import { connection, connectionTarget, runWith, say, type ConnectionOptions } from './admin.js';
import { apiRequester } from './api-request.js';

type Json = Record<string, any>;

/** Garbage collection on the local installation or a remote API. */
interface GcClient {
  preview(options: { grace?: string; project?: string }, onProgress: (count: number, bytes: number) => void): Promise<Json>;
  /** Runs a collection to its end, reporting progress; resolves to the finished run. */
  run(options: { grace?: string; project?: string }, onProgress: (run: Json) => void): Promise<Json>;
  close(): Promise<void>;
}

/**
 * `stowage gc [--dry-run] [--grace D] [--project P]`: on the local installation (while the
 * server runs too: the database lease admits one run at a time) or, with --server, through the
 * API (it starts the run there and follows it).
 */
export function addGcCommand(program: Command): void {
  connection(program.command('gc').description('garbage collection: delete blobs no manifest references (local installation, or --server)'))
    .option('--dry-run', 'list what would be removed, remove nothing')
    .option('--grace <duration>', 'blobs pushed, mounted or linked more recently are kept (default gc.grace, 24h)')
    .option('--project <name>', "only blobs linked into this project's repositories")
    .action(
      runWith(open, async (client: GcClient, o: { dryRun?: boolean; grace?: string; project?: string }) => {
        const started = Date.now();
        const options = { ...(o.grace ? { grace: o.grace } : {}), ...(o.project ? { project: o.project } : {}) };
        const bar = progressBar();
        if (o.dryRun) {
          const result = await client.preview(options, (count, bytes) => bar(`scanning: ${count} unreferenced blobs, ${formatBytes(bytes)}`));
          bar.done();
          for (const blob of result.blobs as Json[]) say(`${blob.digest}  ${blob.size} bytes  last seen ${blob.seenAt}  linked in ${blob.repositories} repositories`);
          say(`dry run: ${result.count} blobs, ${formatBytes(result.bytes)} would be freed (grace ${formatDuration(result.graceMs)}; ${formatDuration(Date.now() - started)})${result.truncated ? `; first ${result.blobs.length} listed` : ''}`);
          return result;
        }
        const run = await client.run(options, (p) => bar(describeProgress(p)));
        bar.done();
        const summary = `${run.blobsFreed} blobs, ${formatBytes(run.bytesFreed)} freed; ${run.blobsExamined} examined, ${run.uploadsRemoved} abandoned uploads removed; ${formatDuration(Date.now() - started)}`;
        if (run.status !== 'succeeded') throw new ControlError('conflict', `garbage collection run ${run.id} failed: ${run.error ?? 'unknown error'} (${summary})`);
        say(`garbage collection run ${run.id}: ${summary}`);
        return run;
      }),
    );
}

export function describeProgress(p: Json): string {
  if (p.phase === 'sweeping') {
    // The rows this run marked are most of what the sweep deletes (rows an interrupted run left come on top).
    const share = p.blobsMarked > 0 ? Math.min(1, p.blobsFreed / p.blobsMarked) : 1;
    const bar = '#'.repeat(Math.round(share * 20)).padEnd(20, '.');
    return `deleting [${bar}] ${Math.round(share * 100)}%: ${p.blobsFreed} of ${p.blobsMarked} blobs freed (${formatBytes(p.bytesFreed)})`;
  }
  if (p.phase === 'marking') return `marking: ${p.blobsExamined} candidates examined (${formatBytes(p.bytesExamined)}), ${p.blobsMarked} marked`;
  return `${p.phase}: ${p.blobsFreed} blobs freed (${formatBytes(p.bytesFreed)})`;
}

/** A one-line progress display on a terminal (stderr); silent otherwise. */
function progressBar(): ((text: string) => void) & { done(): void } {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  const spinner = ['|', '/', '-', '\\'];
  let tick = 0;
  const update = (text: string) => {
    if (!tty) return;
    shown = true;
    process.stderr.write(`\r\x1b[K${spinner[tick++ % spinner.length]} ${text}`);
  };
  return Object.assign(update, {
    done() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  });
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

function parseOptions(options: { grace?: string; project?: string }): { grace?: number; project?: string } {
  const parsed = garbagePreviewInput.safeParse(options);
  if (!parsed.success) throw new ControlError('invalid', parsed.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`).join('; '));
  return parsed.data;
}

async function open(options: ConnectionOptions): Promise<GcClient> {
  const target = connectionTarget(options);
  if ('server' in target) return remote(target.server, target.username, target.password);
  const [{ openLocalInstallation }, { GarbageService }, { enableGarbageCollection }, { createRegistry }] = await Promise.all([
    import('./local-installation.js'),
    import('../control/garbage.js'),
    import('../app/gc.js'),
    import('../registry/registry.js'),
  ]);
  const local = await openLocalInstallation(target.config);
  const { metadata, blobs, audit, logger, actor } = local;
  const garbage = new GarbageService(metadata, local.auth);
  enableGarbageCollection({ config: target.config, metadata, blobStore: blobs, uploads: createRegistry(blobs, metadata).uploads, garbage, audit, logger });
  const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as Json;
  return {
    preview: async (o, onProgress) => plain(await garbage.preview(actor, parseOptions(o), onProgress)),
    run: async (o, onProgress) => plain(await garbage.runNow(actor, parseOptions(o), (p) => onProgress(p))),
    close: () => local.close(),
  };
}

function remote(server: string, username: string, password: string): GcClient {
  const request = apiRequester(server, username, password);
  return {
    preview: (o) => request(`/gc/preview?${new URLSearchParams(o).toString()}`),
    async run(o, onProgress) {
      let run = await request('/gc', o);
      // Follows the run on the server (any node may answer: the run is in the database).
      while (run.status === 'running') {
        onProgress(run);
        await new Promise((resolve) => setTimeout(resolve, 500));
        run = await request(`/gc/runs/${run.id}`);
      }
      return run;
    },
    async close() {},
  };
}
