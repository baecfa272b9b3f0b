import type { RegistryEvent, WebhookFormat } from '../metadata/events-store.js';

/** A rendered payload: the exact bytes that are sent (and signed) and their content type. */
export interface Payload {
  body: string;
  contentType: string;
}

/** Where the registry is reached, for URLs in payloads (Distribution's target.url). */
export interface PayloadOrigin {
  /** e.g. https://registry.example.com; empty when unknown (URLs are then paths). */
  baseUrl: string;
}

export function renderPayload(format: WebhookFormat, event: RegistryEvent, origin: PayloadOrigin): Payload {
  switch (format) {
    case 'stowage':
      return { body: JSON.stringify(stowageEvent(event)), contentType: 'application/json' };
    case 'cloudevents':
      return { body: JSON.stringify(cloudEvent(event, origin)), contentType: 'application/cloudevents+json' };
    case 'distribution':
      return { body: JSON.stringify({ events: [distributionEvent(event, origin)] }), contentType: 'application/vnd.docker.distribution.events.v1+json' };
    case 'slack':
      return { body: JSON.stringify({ text: slackText(event) }), contentType: 'application/json' };
  }
}

/** Stowage's own format: every field of the event. */
export function stowageEvent(event: RegistryEvent) {
  return {
    id: event.id,
    type: event.type,
    time: event.at.toISOString(),
    actor: { name: event.actor, kind: event.actorKind },
    source: { address: event.address, node: event.node },
    project: event.project,
    repository: event.repository,
    tag: event.tag,
    digest: event.digest,
    previousDigest: event.previousDigest,
    mediaType: event.mediaType,
    size: event.size,
    ...(event.detail ? { detail: event.detail } : {}),
  };
}

/** CloudEvents 1.0, structured JSON mode: the Stowage event is the `data`. */
function cloudEvent(event: RegistryEvent, origin: PayloadOrigin) {
  return {
    specversion: '1.0',
    id: event.id,
    source: `${origin.baseUrl || 'stowage'}/${event.repository ?? event.project ?? ''}`.replace(/\/$/, ''),
    type: `io.stowage.${event.type}`,
    time: event.at.toISOString(),
    datacontenttype: 'application/json',
    ...(event.digest || event.tag ? { subject: event.digest ?? event.tag } : {}),
    data: stowageEvent(event),
  };
}

const distributionActions: Partial<Record<RegistryEvent['type'], string>> = {
  'artifact.pushed': 'push',
  'tag.moved': 'push',
  'artifact.pulled': 'pull',
  'artifact.deleted': 'delete',
  'tag.deleted': 'delete',
};

/**
 * One event of the Distribution registry's notification envelope
 * (docs/content/about/notifications.md), so that its existing consumers keep working. Events that
 * Distribution does not know get the action `stowage.<type>`.
 */
function distributionEvent(event: RegistryEvent, origin: PayloadOrigin) {
  const reference = event.digest ?? event.previousDigest;
  const action = distributionActions[event.type] ?? `stowage.${event.type}`;
  return {
    id: event.id,
    timestamp: event.at.toISOString(),
    action,
    target: {
      mediaType: event.mediaType ?? undefined,
      size: event.size ?? undefined,
      digest: reference ?? undefined,
      length: event.size ?? undefined,
      repository: event.repository ?? undefined,
      url: event.repository && reference ? `${origin.baseUrl}/v2/${event.repository}/manifests/${reference}` : undefined,
      tag: event.tag ?? undefined,
    },
    // The request that caused it: its method follows from the action (the user agent is not kept).
    request: { id: event.id, addr: event.address ?? undefined, host: hostOf(origin.baseUrl), method: requestMethods[action], useragent: undefined },
    actor: { name: event.actor ?? undefined },
    source: { addr: event.node ?? undefined, instanceID: event.node ?? undefined },
  };
}

const requestMethods: Record<string, string> = { push: 'PUT', pull: 'GET', delete: 'DELETE' };

function hostOf(baseUrl: string): string | undefined {
  try {
    return baseUrl ? new URL(baseUrl).host : undefined;
  } catch {
    return undefined;
  }
}

/** A one-line, human-readable message (Slack's incoming webhooks and compatible chats). */
export function slackText(event: RegistryEvent): string {
  const who = event.actor ?? event.actorKind ?? 'someone';
  const ref = event.tag ? `${event.repository}:${event.tag}` : event.digest ? `${event.repository}@${event.digest}` : (event.repository ?? event.project ?? '');
  switch (event.type) {
    case 'artifact.pushed':
      return `${who} pushed ${ref} (${event.digest})`;
    case 'artifact.pulled':
      return `${ref} was pulled${typeof event.detail?.count === 'number' ? ` ${event.detail.count} time(s)` : ''}`;
    case 'artifact.deleted':
      return `${who} deleted ${event.repository}@${event.digest}`;
    case 'tag.moved':
      return `${who} moved ${event.repository}:${event.tag} from ${event.previousDigest ?? '(new tag)'} to ${event.digest}`;
    case 'tag.deleted':
      return `${who} deleted tag ${event.repository}:${event.tag} (was ${event.previousDigest})`;
    case 'webhook.test':
      return `Test event from Stowage (${event.node ?? 'unknown node'})`;
    default:
      return `${event.type}${ref ? ` ${ref}` : ''}${event.actor ? ` by ${who}` : ''}`;
  }
}
