import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ControlError } from '../control/errors.js';
import { connection, connectionTarget, runWith, say, type ConnectionOptions } from './admin.js';
import type { RetentionProgress } from '../control/retention.js';

type Json = Record<string, any>;

/** Quotas, usage and retention, on the local installation or a remote API (same JSON either way). */
interface HousekeepingClient {
  quota(project: string): Promise<Json>;
  setQuota(project: string, input: Json): Promise<Json>;
  usage(project: string | undefined): Promise<Json>;
  retention(project: string): Promise<Json>;
  setRetention(project: string, input: unknown): Promise<Json>;
  runRetention(project: string, dryRun: boolean, onProgress: (progress: RetentionProgress) => void): Promise<Json>;
  close(): Promise<void>;
}

/**
 * `stowage quota set|show <project>`, `stowage usage [project]` and `stowage retention
 * show|set|run <project>`: like the other management commands, on the local database (as a
 * system administrator; also while the server runs) or, with --server, over the API.
 */
export function addHousekeepingCommands(program: Command): void {
  const quota = program.command('quota').description("a project's storage quota (local installation, or --server)");
  connection(quota.command('show <project>').description('quota and usage of a project')).action(
    runWith(open, async (client: HousekeepingClient, project: string) => printQuota(await client.quota(project))),
  );
  connection(quota.command('set <project>').description('set the limits (a missing option removes that limit)'))
    .option('--bytes <size>', 'storage limit: 10GiB, 500MB or a number of bytes')
    .option('--repositories <n>', 'most repositories the project may hold')
    .action(
      runWith(open, async (client: HousekeepingClient, project: string, o: { bytes?: string; repositories?: string }) => {
        if (o.repositories !== undefined && !/^\d+$/.test(o.repositories)) throw new ControlError('invalid', '--repositories must be a whole number');
        const bytes = o.bytes === undefined ? null : /^\d+$/.test(o.bytes) ? Number(o.bytes) : o.bytes;
        return printQuota(await client.setQuota(project, { bytes, repositories: o.repositories === undefined ? null : Number(o.repositories) }));
      }),
    );
  connection(program.command('usage [project]').description('storage used by a project, or by every project with a quota (administrators)')).action(
    runWith(open, async (client: HousekeepingClient, project: string | undefined) => {
      const result = await client.usage(project);
      for (const view of project ? [result] : (result.items as Json[])) printQuota(view);
      return result;
    }),
  );

  const retention = program.command('retention').description("a project's retention policy (local installation, or --server)");
  connection(retention.command('show <project>').description('the policy, its schedule and the last scheduled run')).action(
    runWith(open, async (client: HousekeepingClient, project: string) => {
      const view = await client.retention(project);
      say(view.policy ? `${project}: ${JSON.stringify(view.policy)}` : `${project}: no retention policy`);
      if (view.policy) say(`schedule: ${view.schedule ?? 'on demand only'}${view.nextRunAt ? `, next ${view.nextRunAt}` : ''}${view.lastRunAt ? `, last ${view.lastRunAt}` : ''}`);
      return view;
    }),
  );
  connection(retention.command('set <project> <policy>').description('set the policy from JSON (a file name, or - for standard input), e.g. {"keepMostRecent":10,"untaggedAfter":"14d"}')).action(
    runWith(open, async (client: HousekeepingClient, project: string, source: string) => {
      let input: unknown;
      try {
        input = JSON.parse(readFileSync(source === '-' ? 0 : source, 'utf8'));
      } catch (error) {
        throw new ControlError('invalid', `${source}: not readable JSON (${(error as Error).message})`);
      }
      const view = await client.setRetention(project, input);
      say(`${project}: retention policy set; schedule ${view.schedule ?? 'on demand only'}`);
      return view;
    }),
  );
  connection(retention.command('run <project>').description('apply the policy now; --dry-run lists what would go and why'))
    .option('--dry-run', 'remove nothing, list what would be removed')
    .action(
      runWith(open, async (client: HousekeepingClient, project: string, o: { dryRun?: boolean }) => {
        const tty = process.stderr.isTTY;
        const report = await client.runRetention(project, o.dryRun === true, (p) => {
          if (tty) process.stderr.write(`\r${p.repositoriesDone}/${p.repositories} repositories, ${p.removed} manifests ${o.dryRun ? 'to remove' : 'removed'}\x1b[K`);
        });
        if (tty) process.stderr.write('\n');
        const verb = report.dryRun ? 'would remove' : 'removed';
        for (const d of report.removed as Json[]) say(`${verb} ${d.repository}@${d.digest}${d.tags.length ? ` (${d.tags.join(', ')})` : ''}: ${d.reason}`);
        for (const d of report.skipped as Json[]) say(`skipped ${d.repository}@${d.digest}: ${d.skipped}`);
        const seconds = (Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000;
        say(`${report.dryRun ? 'dry run: ' : ''}${report.removed.length} manifests ${report.dryRun ? 'to remove' : 'removed'}, ${report.kept.length} kept, ${report.skipped.length} skipped in ${report.repositories} repositories (${seconds.toFixed(1)} s); blobs are freed by garbage collection`);
        return report;
      }),
    );
}

function printQuota(view: Json): Json {
  const { bytes, repositories } = view.quota as { bytes: number | null; repositories: number | null };
  const used = view.usage as { bytes: number; blobs: number; repositories: number };
  say(`${view.project}: ${used.bytes} bytes in ${used.blobs} blobs (${bytes === null ? 'no byte quota' : `quota ${bytes} bytes`}), ${used.repositories} repositories (${repositories === null ? 'no limit' : `limit ${repositories}`})`);
  return view;
}

async function open(options: ConnectionOptions): Promise<HousekeepingClient> {
  const target = connectionTarget(options);
  if ('server' in target) return remote(target.server, target.username, target.password);
  const [{ pino }, { openMetadataStore }, { createAuthService }, { AuditLog }, { createControl }, { localActor }] = await Promise.all([
    import('pino'),
    import('../metadata/index.js'),
    import('../app/auth-service.js'),
    import('../control/audit.js'),
    import('../control/control.js'),
    import('./local-actor.js'),
  ]);
  const config = target.config;
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const metadata = await openMetadataStore(config);
  const audit = new AuditLog(metadata.control.audit, logger);
  const control = createControl(metadata, createAuthService(config, metadata, audit, logger), audit);
  control.retention.useDefaultSchedule(config.retention.schedule);
  const actor = localActor();
  const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as Json;
  return {
    quota: async (project) => plain(await control.quotas.show(actor, project)),
    setQuota: async (project, input) => plain(await control.quotas.set(actor, project, input)),
    usage: async (project) => plain(project ? await control.quotas.show(actor, project) : await control.quotas.all(actor)),
    retention: async (project) => plain(await control.retention.show(actor, project)),
    setRetention: async (project, input) => plain(await control.retention.set(actor, project, input)),
    runRetention: async (project, dryRun, onProgress) => plain(await control.retention.run(actor, project, { dryRun }, onProgress)),
    async close() {
      await audit.flush();
      await metadata.close();
    },
  };
}

function remote(server: string, username: string, password: string): HousekeepingClient {
  const base = `${server.replace(/\/+$/, '')}/api/v1`;
  const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const call = async (method: string, path: string, body?: unknown): Promise<Json> => {
    const response = await fetch(`${base}${path}`, { method, headers: { authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const parsed = (await response.json().catch(() => ({}))) as Json;
    if (response.ok) return parsed;
    const code = ({ 400: 'invalid', 401: 'unauthorized', 403: 'forbidden', 404: 'not-found', 409: 'conflict', 429: 'too-many-requests' } as const)[response.status as 400];
    throw new ControlError(code ?? 'invalid', String(parsed.error?.message ?? `${method} ${path}: HTTP ${response.status}`), parsed.error?.fields ?? []);
  };
  const project = (name: string) => `/projects/${encodeURIComponent(name)}`;
  return {
    quota: (name) => call('GET', `${project(name)}/quota`),
    setQuota: (name, input) => call('PUT', `${project(name)}/quota`, input),
    usage: (name) => call('GET', name ? `${project(name)}/usage` : '/usage'),
    retention: (name) => call('GET', `${project(name)}/retention`),
    setRetention: (name, input) => call('PUT', `${project(name)}/retention`, input),
    // The API answers when the run is over; progress is shown for local runs only.
    runRetention: (name, dryRun) => call('POST', `${project(name)}/retention/run${dryRun ? '?dryRun=true' : ''}`),
    async close() {},
  };
}
