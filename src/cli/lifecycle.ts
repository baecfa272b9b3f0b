import type { Command } from 'commander';
import { ControlError } from '../control/errors.js';
import { connection, connectionTarget, runWith, say, type ConnectionOptions } from './admin.js';
import { apiRequester } from './api-request.js';

type Json = Record<string, any>;

/** Tag history, rollback and image diff, on the local installation or a remote API. */
interface LifecycleClient {
  history(repository: string, tag: string): Promise<Json>;
  rollback(repository: string, tag: string, input: { to?: string; steps?: number }): Promise<Json>;
  diff(repository: string, from: string, to: string): Promise<Json>;
  close(): Promise<void>;
}

/** Who moved a tag, for the history table: `alice (user) from 10.0.0.7`, `-` when unknown. */
function movedBy(by: Json | null | undefined): string {
  if (!by) return '-';
  const who = by.actor ?? (by.actorKind === 'anonymous' ? 'anonymous' : '-');
  return `${who} (${by.actorKind})${by.address ? ` from ${by.address}` : ''}`;
}

/**
 * `stowage tag history|rollback` and `stowage diff`: like the other management commands, on the
 * local database and blob storage (as a system administrator) or, with --server, over the API.
 */
export function addLifecycleCommands(program: Command): void {
  const tag = program.command('tag').description("a tag's history and rollback (local installation, or --server)");
  connection(tag.command('history <reference>').description('moves of <repository>:<tag>, newest first')).action(
    runWith(open, async (client: LifecycleClient, reference: string) => {
      const [repository, name] = splitReference(reference);
      const history = await client.history(repository, name);
      say(`${repository}:${name} -> ${history.current ?? '(deleted)'}; restorable since ${history.windowStart}`);
      const rows: string[][] = [['AT', 'FROM', 'TO', 'BY', 'NODE', 'IN WINDOW'], ...history.items.map((i: Json) => [String(i.at), i.previousDigest ?? '-', i.digest ?? '(deleted)', movedBy(i.by), i.by?.node || '-', i.inWindow ? 'yes' : 'no'])];
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
      for (const row of rows) say(row.map((v, c) => (c === row.length - 1 ? String(v) : String(v).padEnd(widths[c]!))).join('  '));
      return history;
    }),
  );
  connection(tag.command('rollback <reference>').description('point <repository>:<tag> back at a digest it named inside the history window'))
    .option('--to <digest>', 'the digest to restore')
    .option('--steps <n>', 'how many moves back (default 1)')
    .action(
      runWith(open, async (client: LifecycleClient, reference: string, o: { to?: string; steps?: string }) => {
        const [repository, name] = splitReference(reference);
        if (o.steps !== undefined && !/^\d+$/.test(o.steps)) throw new ControlError('invalid', '--steps must be a positive whole number');
        const result = await client.rollback(repository, name, { ...(o.to ? { to: o.to } : {}), ...(o.steps ? { steps: Number(o.steps) } : {}) });
        say(result.moved ? `${repository}:${name}: ${result.previousDigest ?? '(deleted)'} -> ${result.digest}` : `${repository}:${name} already points at ${result.digest}`);
        return result;
      }),
    );

  connection(program.command('diff <repository> <from> <to>').description('compare two images of a repository (tags or digests): layers, config, size')).action(
    runWith(open, async (client: LifecycleClient, repository: string, from: string, to: string) => {
      const diff = await client.diff(repository, from, to);
      say(`${from} (${diff.from.digest}, ${diff.from.size} bytes) -> ${to} (${diff.to.digest}, ${diff.to.size} bytes): ${diff.sizeChange >= 0 ? '+' : ''}${diff.sizeChange} bytes`);
      say(`layers: ${diff.layers.shared.length} shared, ${diff.layers.removed.length} removed, ${diff.layers.added.length} added`);
      for (const l of diff.layers.removed) say(`  - ${l.digest} (${l.size} bytes)`);
      for (const l of diff.layers.added) say(`  + ${l.digest} (${l.size} bytes)`);
      if (diff.config) {
        for (const key of ['env', 'labels'] as const) {
          const c = diff.config[key];
          for (const [k, v] of Object.entries(c.removed)) say(`${key}: - ${k}=${String(v)}`);
          for (const [k, v] of Object.entries(c.added)) say(`${key}: + ${k}=${String(v)}`);
          for (const [k, v] of Object.entries(c.changed) as [string, Json][]) say(`${key}: ~ ${k}: ${v.from} -> ${v.to}`);
        }
        for (const key of ['entrypoint', 'cmd', 'user', 'workingDir'] as const) {
          const c = diff.config[key];
          if (c) say(`${key}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`);
        }
      }
      return diff;
    }),
  );
}

function splitReference(reference: string): [string, string] {
  const colon = reference.lastIndexOf(':');
  if (colon <= 0 || colon === reference.length - 1) throw new ControlError('invalid', `expected <repository>:<tag>, got ${reference}`);
  return [reference.slice(0, colon), reference.slice(colon + 1)];
}

async function open(options: ConnectionOptions): Promise<LifecycleClient> {
  const target = connectionTarget(options);
  if ('server' in target) return remote(target.server, target.username, target.password);
  const [{ openLocalInstallation }, { TagHistoryService }] = await Promise.all([import('./local-installation.js'), import('../control/tag-history.js')]);
  const local = await openLocalInstallation(target.config);
  const { actor } = local;
  const service = new TagHistoryService(local.metadata, local.auth, local.audit, local.blobs);
  const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as Json;
  return {
    history: async (repository, tag) => plain(await service.history(actor, repository, tag)),
    rollback: async (repository, tag, input) => plain(await service.rollback(actor, repository, tag, input)),
    diff: async (repository, from, to) => plain(await service.diff(actor, repository, from, to)),
    close: () => local.close(),
  };
}

function remote(server: string, username: string, password: string): LifecycleClient {
  const request = apiRequester(server, username, password);
  const tagPath = (repository: string, tag: string) => `/repositories/${repository}/-/tags/${encodeURIComponent(tag)}`;
  return {
    history: (repository, tag) => request(`${tagPath(repository, tag)}/history`),
    rollback: (repository, tag, input) => request(`${tagPath(repository, tag)}/rollback`, input),
    diff: (repository, from, to) => request(`/repositories/${repository}/-/diff?${new URLSearchParams({ from, to }).toString()}`),
    async close() {},
  };
}
