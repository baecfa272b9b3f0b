import { z } from 'zod';
import { newWebhookInput, webhookChangesInput } from '../../control/webhooks.js';
import type { ApiRoute } from './routes.js';

const webhook = '{ id, project, url, events, repository, tag, format, headers, enabled, hasSecret, createdBy, createdAt, updatedAt }';
const delivery = '{ id, webhookId, eventId, eventType, repository, state: pending|delivered|dead, attempts, nextAttemptAt, lastStatus, lastError, latencyMs, response, createdAt, deliveredAt }';

/** Webhooks under /api/v1/webhooks (owners of the project; system-wide ones: administrators). */
export const webhookRoutes: ApiRoute[] = [
  {
    method: 'GET',
    path: '/webhooks',
    tag: 'webhooks',
    summary: "Webhooks: a project's (?project=, owners) or all (admins). Secrets are never returned, only hasSecret",
    query: z.object({ project: z.string().max(64).optional() }).strict(),
    response: `{ items: ${webhook}[] }`,
    async handle({ control, actor, query }) {
      return { items: await control.webhooks.list(actor, query.project as string | undefined) };
    },
  },
  {
    method: 'POST',
    path: '/webhooks',
    tag: 'webhooks',
    summary:
      'Add a webhook: { url, project? (absent: system-wide, admins), events?: [artifact.pushed, ...] (empty: all), repository?/tag?: globs, secret? (HMAC-SHA256 signature, write-only), headers?, format?: stowage|cloudevents|distribution|slack, enabled? }',
    body: newWebhookInput,
    status: 201,
    response: webhook,
    handle: ({ control, actor, body }) => control.webhooks.create(actor, body),
  },
  {
    method: 'GET',
    path: '/webhooks/{id}',
    tag: 'webhooks',
    summary: 'A webhook',
    response: webhook,
    handle: ({ control, actor, params }) => control.webhooks.get(actor, params.id!),
  },
  {
    method: 'PATCH',
    path: '/webhooks/{id}',
    tag: 'webhooks',
    summary: 'Change a webhook (any field of the creation but project; secret: null removes it)',
    body: webhookChangesInput,
    response: webhook,
    handle: ({ control, actor, params, body }) => control.webhooks.update(actor, params.id!, body),
  },
  {
    method: 'DELETE',
    path: '/webhooks/{id}',
    tag: 'webhooks',
    summary: 'Remove a webhook with its delivery log',
    response: 'no content',
    handle: ({ control, actor, params }) => control.webhooks.delete(actor, params.id!),
  },
  {
    method: 'POST',
    path: '/webhooks/{id}/test',
    tag: 'webhooks',
    summary: 'Send a test event (webhook.test) to this webhook; follow it in the delivery log',
    status: 202,
    response: delivery,
    handle: ({ control, actor, params }) => control.webhooks.test(actor, params.id!),
  },
  {
    method: 'GET',
    path: '/webhooks/{id}/deliveries',
    tag: 'webhooks',
    summary: "The webhook's delivery log, newest first: state, attempts, last status, latency, the first KiB of the answer",
    query: z
      .object({ page: z.coerce.number().int().min(1).default(1), page_size: z.coerce.number().int().min(1).max(500).default(50) })
      .strict(),
    response: `{ items: ${delivery}[], total, page, page_size }`,
    async handle({ control, actor, params, query }) {
      const size = query.page_size as number;
      const result = await control.webhooks.deliveries(actor, params.id!, { offset: ((query.page as number) - 1) * size, limit: size });
      return { ...result, page: query.page, page_size: size };
    },
  },
  {
    method: 'POST',
    path: '/webhooks/{id}/deliveries/{delivery}/redeliver',
    tag: 'webhooks',
    summary: 'Send a delivered or dead-lettered event again (a new delivery with the same event id)',
    status: 202,
    response: delivery,
    handle: ({ control, actor, params }) => control.webhooks.redeliver(actor, params.id!, params.delivery!),
  },
];
