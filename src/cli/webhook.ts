import type { Command } from 'commander';
import { ControlError } from '../control/errors.js';
import { connection, run, say, table } from './admin.js';

/**
 * `stowage webhook list|add|remove|test|deliveries|redeliver`: on the local database (as a system
 * administrator) or, with --server, over the API; same settings as `stowage serve`.
 */
export function addWebhookCommands(program: Command): void {
  const webhook = program.command('webhook').description('webhooks: event notifications to HTTP endpoints (local installation, or --server)');
  connection(webhook.command('list').description('list webhooks (all, or a project\'s)'))
    .option('--project <project>', "a project's webhooks")
    .action(run(async (client, o: { project?: string }) => table(await client.listWebhooks(o.project), ['id', 'project', 'url', 'format', 'events', 'repository', 'tag', 'enabled', 'hasSecret'])));
  connection(webhook.command('add').description('add a webhook; without --project it is system-wide (every project, system events)'))
    .requiredOption('--url <url>', 'where events are POSTed (http or https)')
    .option('--project <project>', 'only this project\'s events')
    .option('--events <types>', 'comma-separated event types, e.g. artifact.pushed,artifact.deleted (default: all)')
    .option('--repository <glob>', 'only repositories matching (* and ?)')
    .option('--tag <glob>', 'only tags matching (* and ?)')
    .option('--secret <secret>', 'sign bodies with HMAC-SHA256 (X-Stowage-Signature); prefer --secret-env')
    .option('--secret-env <variable>', 'read the secret from this environment variable (flags show in ps)')
    .option('--header <name:value...>', 'extra request header (repeatable)')
    .option('--format <format>', 'stowage, cloudevents, distribution or slack (default stowage)')
    .option('--disabled', 'add it disabled')
    .action(
      run(async (client, o: { url: string; project?: string; events?: string; repository?: string; tag?: string; secret?: string; secretEnv?: string; header?: string[]; format?: string; disabled?: boolean }) => {
        const secret = o.secretEnv !== undefined ? process.env[o.secretEnv] : o.secret;
        if (o.secretEnv !== undefined && !secret) throw new ControlError('invalid', `environment variable ${o.secretEnv} is empty or not set`);
        const headers: Record<string, string> = {};
        for (const h of o.header ?? []) {
          const colon = h.indexOf(':');
          if (colon <= 0) throw new ControlError('invalid', `--header ${h}: expected name:value`);
          headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
        }
        const created = await client.createWebhook({
          url: o.url,
          ...(o.project ? { project: o.project } : {}),
          ...(o.events ? { events: o.events.split(',').map((e) => e.trim()).filter(Boolean) } : {}),
          ...(o.repository ? { repository: o.repository } : {}),
          ...(o.tag ? { tag: o.tag } : {}),
          ...(secret ? { secret } : {}),
          ...(Object.keys(headers).length > 0 ? { headers } : {}),
          ...(o.format ? { format: o.format } : {}),
          ...(o.disabled ? { enabled: false } : {}),
        });
        say(`added webhook ${created.id} -> ${created.url} (${created.format}${created.project ? `, project ${created.project}` : ', system-wide'}${created.hasSecret ? ', signed' : ''})`);
        return created;
      }),
    );
  connection(webhook.command('remove <id>').description('remove a webhook and its delivery log')).action(
    run(async (client, id: string) => {
      await client.deleteWebhook(id);
      say(`removed webhook ${id}`);
    }),
  );
  connection(webhook.command('test <id>').description('send a test event (webhook.test) to a webhook; see `deliveries` for the outcome')).action(
    run(async (client, id: string) => {
      const delivery = await client.testWebhook(id);
      say(`test event ${delivery.eventId} queued as delivery ${delivery.id}; the dispatcher sends it within its poll interval`);
      return delivery;
    }),
  );
  connection(webhook.command('deliveries <id>').description("a webhook's delivery log, newest first")).action(
    run(async (client, id: string) => table(await client.webhookDeliveries(id), ['id', 'eventType', 'eventId', 'state', 'attempts', 'lastStatus', 'latencyMs', 'lastError', 'createdAt'])),
  );
  connection(webhook.command('redeliver <id> <delivery>').description('send a delivered or dead-lettered event again')).action(
    run(async (client, id: string, delivery: string) => {
      const again = await client.redeliver(id, delivery);
      say(`event ${again.eventId} queued again as delivery ${again.id}`);
      return again;
    }),
  );
}
