import type { RegistryEvent, WebhookRecord } from '../metadata/events-store.js';
import { globMatches } from '../registry/immutability.js';

/**
 * Whether a webhook wants an event: its types (empty: all but `webhook.test`, which goes only to
 * the webhook it tests), its project (system-wide webhooks see every project), and its repository
 * and tag globs (an event without a repository or tag passes only a filter that is not set).
 */
export function webhookWants(webhook: WebhookRecord, event: RegistryEvent): boolean {
  if (event.type === 'webhook.test') return false;
  if (webhook.events.length > 0 && !webhook.events.includes(event.type)) return false;
  if (webhook.project !== null && webhook.project !== event.project) return false;
  if (webhook.repository !== null && (event.repository === null || !globMatches(webhook.repository, event.repository))) return false;
  if (webhook.tag !== null && (event.tag === null || !globMatches(webhook.tag, event.tag))) return false;
  return true;
}
