import { z } from 'zod';
import { boolean, duration } from './primitives.js';

/** This node's name in tag history and events; by default `<host name>:<pid>`. */
export const nodeSchema = z
  .object({
    name: z.string().min(1).max(100).regex(/^[\w.:@-]+$/, 'letters, digits and . _ : @ -').optional(),
  })
  .strict()
  .prefault({});

/**
 * The event outbox. Pull events (`artifact.pulled`) never touch a pull's path: they are counted in
 * memory and written in batches, `all` (one event per manifest pull), `sample` (one in
 * 1/pullSampleRate, chosen at random), `aggregate` (one event per repository and digest per
 * `pullWindow`, with the count) or `off`.
 */
export const eventsSchema = z
  .object({
    pulls: z.enum(['off', 'all', 'sample', 'aggregate']).default('aggregate'),
    pullSampleRate: z.coerce.number().gt(0).max(1).default(0.1),
    pullWindow: duration.prefault('1m').refine((ms) => ms >= 100 && ms <= 86_400_000, 'between 100ms and 1d'),
    /** Events and finished deliveries are removed after this. */
    retention: duration.prefault('7d').refine((ms) => ms >= 60_000, 'at least 1m'),
  })
  .strict()
  .prefault({});

/** Webhook delivery: safety (SSRF), retries, limits. */
export const webhooksSchema = z
  .object({
    /** Allow targets on loopback, link-local, private, unique-local and multicast addresses. */
    allowPrivateTargets: boolean.default(false),
    /** Attempts before a delivery is dead-lettered. */
    maxAttempts: z.coerce.number().int().min(1).max(100).default(10),
    /** A request whose answer does not arrive within this fails (connect included). */
    timeout: duration.prefault('10s').refine((ms) => ms >= 100 && ms <= 300_000, 'between 100ms and 5m'),
    /** Requests in flight per webhook, per node. */
    concurrency: z.coerce.number().int().min(1).max(64).default(4),
    /** How often the dispatcher looks for due deliveries. */
    pollInterval: duration.prefault('1s').refine((ms) => ms >= 10 && ms <= 60_000, 'between 10ms and 1m'),
    /** The first retry's delay; each further one doubles it (with random jitter), up to retryMax. */
    retryBase: duration.prefault('5s').refine((ms) => ms >= 10, 'at least 10ms'),
    retryMax: duration.prefault('1h'),
    /** Consecutive failures of an endpoint that open its circuit breaker, and how long it stays open. */
    breakerThreshold: z.coerce.number().int().min(1).max(1000).default(5),
    breakerCooldown: duration.prefault('1m'),
  })
  .strict()
  .prefault({});

export const eventSettings = [
  { key: 'node.name', env: 'STOWAGE_NODE_NAME', flag: '--node-name <name>', help: 'name of this node in tag history and events (default <host name>:<pid>)' },
  { key: 'events.pulls', env: 'STOWAGE_EVENTS_PULLS', flag: '--events-pulls <mode>', help: 'artifact.pulled events: off, all, sample or aggregate (default aggregate)' },
  { key: 'events.pullSampleRate', env: 'STOWAGE_EVENTS_PULL_SAMPLE_RATE', flag: '--events-pull-sample-rate <rate>', help: 'share of pulls that become events with pulls: sample (default 0.1)' },
  { key: 'events.pullWindow', env: 'STOWAGE_EVENTS_PULL_WINDOW', flag: '--events-pull-window <duration>', help: 'one aggregated pull event per repository and digest per window (default 1m)' },
  { key: 'events.retention', env: 'STOWAGE_EVENTS_RETENTION', flag: '--events-retention <duration>', help: 'events and finished deliveries are removed after this (default 7d)' },
  { key: 'webhooks.allowPrivateTargets', env: 'STOWAGE_WEBHOOKS_ALLOW_PRIVATE', flag: '--webhooks-allow-private <bool>', help: 'allow webhook targets on loopback, private and link-local addresses (default false)' },
  { key: 'webhooks.maxAttempts', env: 'STOWAGE_WEBHOOKS_MAX_ATTEMPTS', flag: '--webhooks-max-attempts <n>', help: 'attempts before a delivery is dead-lettered (default 10)' },
  { key: 'webhooks.timeout', env: 'STOWAGE_WEBHOOKS_TIMEOUT', flag: '--webhooks-timeout <duration>', help: 'a webhook request fails after this (default 10s)' },
  { key: 'webhooks.concurrency', env: 'STOWAGE_WEBHOOKS_CONCURRENCY', flag: '--webhooks-concurrency <n>', help: 'requests in flight per webhook and node (default 4)' },
  { key: 'webhooks.pollInterval', env: 'STOWAGE_WEBHOOKS_POLL_INTERVAL', flag: '--webhooks-poll-interval <duration>', help: 'how often due deliveries are looked for (default 1s)' },
  { key: 'webhooks.retryBase', env: 'STOWAGE_WEBHOOKS_RETRY_BASE', flag: '--webhooks-retry-base <duration>', help: 'first retry delay, doubled each time with jitter (default 5s)' },
  { key: 'webhooks.retryMax', env: 'STOWAGE_WEBHOOKS_RETRY_MAX', flag: '--webhooks-retry-max <duration>', help: 'longest retry delay (default 1h)' },
  { key: 'webhooks.breakerThreshold', env: 'STOWAGE_WEBHOOKS_BREAKER_THRESHOLD', flag: '--webhooks-breaker-threshold <n>', help: 'consecutive failures that pause a webhook (default 5)' },
  { key: 'webhooks.breakerCooldown', env: 'STOWAGE_WEBHOOKS_BREAKER_COOLDOWN', flag: '--webhooks-breaker-cooldown <duration>', help: 'how long a paused webhook waits (default 1m)' },
] as const;
