import { z } from 'zod';
import type { AuthService } from '../auth/service.js';
import type { Actor } from '../auth/principal.js';
import { actorName } from '../auth/principal.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { eventTypes, type DeliveryRecord, type EventType, type WebhookRecord } from '../metadata/events-store.js';
import { originOf } from '../events/sender.js';
import type { EventRecorder } from '../events/recorder.js';
import type { AuditLog } from './audit.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess, systemAccess } from './guard.js';
import { parse, projectName } from './validation.js';

/** Headers a webhook may not set: the ones Stowage sets itself, and those of the connection. */
const reservedHeader = /^(content-type|content-length|host|connection|transfer-encoding|user-agent|idempotency-key|x-stowage-.*)$/i;

const subscribable = eventTypes.filter((t) => t !== 'webhook.test') as [EventType, ...EventType[]];

const glob = (what: string) => z.string().min(1).max(255).regex(/^[A-Za-z0-9._/*?:-]+$/, `a ${what} pattern (* and ? as wildcards)`);

/** True unless the URL carries a user or password (an unparsable one is reported by the URL check). */
function withoutCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return !parsed.username && !parsed.password;
  } catch {
    return true;
  }
}

const webhookFields = {
  url: z
    .url({ protocol: /^https?$/, error: 'an http:// or https:// URL' })
    .max(2000)
    .refine(withoutCredentials, 'credentials in the URL are not allowed: use a secret or headers'),
  events: z.array(z.enum(subscribable, { error: `one of ${subscribable.join(', ')}` })).max(subscribable.length),
  repository: glob('repository').nullable(),
  tag: glob('tag').nullable(),
  /** Signs each body (HMAC-SHA256); never shown again after creation. */
  secret: z.string().min(16, 'at least 16 characters').max(256).nullable(),
  headers: z
    .record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name').refine((h) => !reservedHeader.test(h), 'set by Stowage itself'), z.string().max(1000).regex(/^[^\r\n]*$/, 'one line'))
    .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers'),
  format: z.enum(['stowage', 'cloudevents', 'distribution', 'slack']),
  enabled: z.boolean(),
};

export const newWebhookInput = z
  .object({
    ...webhookFields,
    /** The project whose events it receives; absent: system-wide (administrators only). */
    project: projectName.optional(),
    events: webhookFields.events.default([]),
    repository: webhookFields.repository.default(null),
    tag: webhookFields.tag.default(null),
    secret: webhookFields.secret.default(null),
    headers: webhookFields.headers.default({}),
    format: webhookFields.format.default('stowage'),
    enabled: webhookFields.enabled.default(true),
  })
  .strict();

export const webhookChangesInput = z.object(webhookFields).partial().strict();

/**
 * Webhooks and their delivery log. A project's webhooks are managed by its owners, system-wide
 * ones (every project's events and system events) by administrators. Secrets are write-only:
 * the API says whether one is set (`hasSecret`), never what it is.
 */
export class WebhookService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    private readonly events: EventRecorder,
  ) {}

  async list(actor: Actor, project: string | undefined): Promise<WebhookRecord[]> {
    if (project !== undefined) {
      parse(projectName, project);
      await this.requireManager(actor, project);
      return this.metadata.webhooks.list(project);
    }
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators list every webhook; project owners add ?project=<name>');
    return this.metadata.webhooks.list();
  }

  async create(actor: Actor, input: unknown): Promise<WebhookRecord> {
    const data = parse(newWebhookInput, input);
    await this.requireManager(actor, data.project ?? null);
    const created = await this.metadata.webhooks.create({ ...data, project: data.project ?? null, createdBy: actor.principal.kind === 'anonymous' ? null : actorName(actor.principal) });
    if (!created) throw notFound(`project ${data.project}`);
    this.audit.record(actor, { action: 'webhook.create', result: 'success', target: `webhook ${created.id}`, project: created.project, detail: { url: originOf(created.url), format: created.format, events: created.events } });
    return created;
  }

  async get(actor: Actor, id: string): Promise<WebhookRecord> {
    const webhook = await this.metadata.webhooks.get(id);
    if (!webhook) throw notFound(`webhook ${id}`);
    await this.requireManager(actor, webhook.project, id);
    return webhook;
  }

  async update(actor: Actor, id: string, input: unknown): Promise<WebhookRecord> {
    const changes = parse(webhookChangesInput, input);
    const webhook = await this.get(actor, id);
    const updated = await this.metadata.webhooks.update(id, changes);
    if (!updated) throw notFound(`webhook ${id}`);
    this.audit.record(actor, { action: 'webhook.update', result: 'success', target: `webhook ${id}`, project: webhook.project, detail: { fields: Object.keys(changes) } });
    return updated;
  }

  async delete(actor: Actor, id: string): Promise<void> {
    const webhook = await this.get(actor, id);
    if (!(await this.metadata.webhooks.delete(id))) throw notFound(`webhook ${id}`);
    this.audit.record(actor, { action: 'webhook.delete', result: 'success', target: `webhook ${id}`, project: webhook.project });
  }

  /** Queues a `webhook.test` event for this webhook only; the dispatcher sends it like any other. */
  async test(actor: Actor, id: string): Promise<DeliveryRecord> {
    const webhook = await this.get(actor, id);
    if (!webhook.enabled) throw new ControlError('conflict', `webhook ${id} is disabled: enable it first (PATCH {"enabled": true})`);
    const delivery = await this.metadata.webhooks.enqueueTest(id, this.events.testEvent(actor, webhook.project));
    this.audit.record(actor, { action: 'webhook.test', result: 'success', target: `webhook ${id}`, project: webhook.project });
    return delivery;
  }

  async deliveries(actor: Actor, id: string, page: { offset: number; limit: number }) {
    await this.get(actor, id);
    return this.metadata.webhooks.deliveries(id, page);
  }

  /** Sends an event again (a new delivery of the same event id, due now), e.g. after a dead letter. */
  async redeliver(actor: Actor, id: string, deliveryId: string): Promise<DeliveryRecord> {
    const webhook = await this.get(actor, id);
    const delivery = await this.metadata.webhooks.delivery(id, deliveryId);
    if (!delivery) throw notFound(`delivery ${deliveryId} of webhook ${id}`);
    if (delivery.state === 'pending') throw new ControlError('conflict', `delivery ${deliveryId} is still pending (attempt ${delivery.attempts + 1} is due ${delivery.nextAttemptAt?.toISOString() ?? 'now'})`);
    const again = await this.metadata.webhooks.enqueue(id, delivery.eventId);
    this.audit.record(actor, { action: 'webhook.redeliver', result: 'success', target: `webhook ${id}`, project: webhook.project, detail: { delivery: deliveryId, event: delivery.eventId } });
    return again;
  }

  /** Owners of the project (or administrators); system-wide webhooks: administrators. Others: not found. */
  private async requireManager(actor: Actor, project: string | null, id?: string): Promise<void> {
    const access = project === null ? systemAccess : { type: 'project' as const, name: project, actions: ['admin'] };
    if (await this.auth.authorizer.allows(actor.principal, access)) return;
    if (actor.principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
    if (id !== undefined) throw notFound(`webhook ${id}`);
    throw new ControlError('forbidden', project === null ? 'only system administrators manage system-wide webhooks; give a project' : `only owners of project ${project} and system administrators manage its webhooks`);
  }
}
