import type { Logger } from 'pino';
import client from 'prom-client';
import type { ClaimedDelivery, EventQueries } from '../metadata/events-store.js';
import { webhookWants } from './filters.js';
import { renderPayload } from './formats.js';
import { originOf, sendDelivery, type SendResult } from './sender.js';

export interface DispatcherOptions {
  /** This node's name: the owner of its claims. */
  node: string;
  allowPrivateTargets: boolean;
  maxAttempts: number;
  timeoutMs: number;
  /** Requests in flight per webhook on this node. */
  concurrency: number;
  pollIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** Events and finished deliveries older than this are removed (hourly). */
  retentionMs: number;
  /** The registry's external URL for links in payloads ('' when unknown). */
  baseUrl?: string;
  /**
   * Release every claim at start: only when no other dispatcher can be alive (an embedded SQLite
   * deployment: a killed process's claims would otherwise wait for their lease to expire).
   */
  releaseClaimsAtStart?: boolean;
  /** Prometheus registry for the dispatcher's metrics. */
  metrics?: client.Registry;
  now?: () => number;
  random?: () => number;
}

/** Deliveries claimed per poll at most, all webhooks together. */
const CLAIM_BATCH = 32;
/** Events turned into deliveries per fan-out step. */
const FAN_OUT_BATCH = 200;

/** Per-webhook circuit breaker state on this node. */
interface Breaker {
  failures: number;
  openUntil: number;
}

/**
 * Delivers webhook events. Runs in the background-jobs process of every node; the database decides
 * who sends what: fan-out (events → deliveries) happens in one transaction at a time, and each
 * poll claims due deliveries with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so that
 * several nodes never send the same delivery at once. A node that dies mid-send loses its lease
 * and another node sends again: delivery is at least once, and every attempt carries the event
 * id as idempotency key (`Idempotency-Key`, `X-Stowage-Event-Id`) for receivers to deduplicate.
 *
 * Retries back off exponentially with jitter (retryBase · 2^(attempt-1), ±50%, at most retryMax)
 * until maxAttempts, then the delivery is dead-lettered (kept in the log; redeliverable by hand).
 * A repository's events reach each webhook in order: a delivery waits while an earlier one of the
 * same repository and webhook is unfinished. Per webhook and node: at most `concurrency`
 * requests in flight, and a circuit breaker that stops claiming for `breakerCooldown` after
 * `breakerThreshold` consecutive failures.
 */
export class Dispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = true;
  private ticking: Promise<void> = Promise.resolve();
  private readonly inFlight = new Map<string, number>();
  private readonly waiting = new Map<string, ClaimedDelivery[]>();
  private readonly sending = new Set<Promise<void>>();
  private readonly breakers = new Map<string, Breaker>();
  private lastPurge = 0;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly metrics: DispatcherMetrics;

  constructor(
    private readonly events: EventQueries,
    private readonly logger: Logger,
    private readonly options: DispatcherOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.metrics = new DispatcherMetrics(options.metrics ?? new client.Registry(), () => events.pendingCount());
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (!this.options.releaseClaimsAtStart) return this.schedule(0);
    this.ticking = this.events
      .releaseClaims()
      .then((released) => {
        if (released > 0) this.logger.info({ released }, 'webhook deliveries claimed by an earlier process released');
      })
      .catch((error: unknown) => this.logger.error({ err: error }, 'releasing earlier webhook delivery claims failed'))
      .finally(() => this.schedule(0));
  }

  /** Stops polling and waits for the requests in flight (each bounded by the timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.all([...this.sending]);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => this.schedule(this.options.pollIntervalMs));
    }, delayMs);
    this.timer.unref();
  }

  /** One poll: fan out new events, claim what is due, start sending it. Also callable by tests. */
  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let round = 0; round < 10; round++) {
        const fanned = await this.events.fanOut(FAN_OUT_BATCH, webhookWants);
        this.metrics.produced.inc(fanned);
        if (fanned < FAN_OUT_BATCH) break;
      }
      const skip = this.unavailableWebhooks();
      const claimed = await this.events.claim(this.options.node, CLAIM_BATCH, this.leaseMs(), skip);
      for (const delivery of claimed) this.enqueue(delivery);
      if (this.now() - this.lastPurge > 3_600_000) {
        this.lastPurge = this.now();
        const removed = await this.events.purge(new Date(this.now() - this.options.retentionMs));
        if (removed > 0) this.logger.info({ removed }, 'old events and finished deliveries removed');
      }
    } catch (error) {
      this.logger.error({ err: error }, 'webhook dispatcher poll failed');
    } finally {
      this.running = false;
    }
  }

  /**
   * A claim must outlive its queueing and sending: deliveries claimed beyond a webhook's
   * concurrency wait locally, at most CLAIM_BATCH of them, each bounded by the timeout.
   */
  private leaseMs(): number {
    return this.options.timeoutMs * (Math.ceil(CLAIM_BATCH / this.options.concurrency) + 1) + 30_000;
  }

  /** Webhooks not to claim for now: at their concurrency limit, or with an open breaker. */
  private unavailableWebhooks(): string[] {
    const at = this.now();
    const skip = new Set<string>();
    for (const [id, count] of this.inFlight) if (count >= this.options.concurrency) skip.add(id);
    for (const [id, breaker] of this.breakers) if (breaker.openUntil > at) skip.add(id);
    return [...skip];
  }

  private enqueue(delivery: ClaimedDelivery): void {
    const id = delivery.webhook.id;
    if ((this.inFlight.get(id) ?? 0) >= this.options.concurrency) {
      const queue = this.waiting.get(id) ?? [];
      queue.push(delivery);
      this.waiting.set(id, queue);
      return;
    }
    this.inFlight.set(id, (this.inFlight.get(id) ?? 0) + 1);
    const sending = this.deliver(delivery).finally(() => {
      this.sending.delete(sending);
      this.inFlight.set(id, (this.inFlight.get(id) ?? 1) - 1);
      const next = this.waiting.get(id)?.shift();
      if (next) this.enqueue(next);
    });
    this.sending.add(sending);
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const { webhook, event } = delivery;
    try {
      // Claimed before the breaker opened (queued behind the concurrency limit): not sent now.
      const openUntil = this.breakers.get(webhook.id)?.openUntil ?? 0;
      if (openUntil > this.now()) {
        await this.events.postpone(delivery.id, delivery.leaseUntil, openUntil);
        return;
      }
      const payload = renderPayload(webhook.format, event, { baseUrl: this.options.baseUrl ?? '' });
      const result = await sendDelivery(
        {
          url: webhook.url,
          body: payload.body,
          contentType: payload.contentType,
          eventId: event.id,
          eventType: event.type,
          deliveryId: delivery.id,
          secret: webhook.secret,
          headers: webhook.headers,
        },
        { timeoutMs: this.options.timeoutMs, allowPrivateTargets: this.options.allowPrivateTargets, now: this.now },
      );
      await this.record(delivery, result);
    } catch (error) {
      this.logger.error({ err: error, webhook: webhook.id, delivery: delivery.id }, 'webhook delivery failed unexpectedly');
    }
  }

  private async record(delivery: ClaimedDelivery, result: SendResult): Promise<void> {
    const { webhook, event } = delivery;
    const attempt = delivery.attempts + 1;
    this.metrics.latency.observe({ outcome: result.ok ? 'delivered' : 'failed' }, result.latencyMs / 1000);
    const outcome = { status: result.status, error: result.error, latencyMs: result.latencyMs, response: result.response };
    if (result.ok) {
      this.breakers.delete(webhook.id);
      this.metrics.delivered.inc({ format: webhook.format });
      await this.finish(delivery, outcome, { state: 'delivered', nextAttemptAt: null });
      return;
    }
    this.trip(webhook.id);
    // A refused target (SSRF rule, bad URL) cannot succeed by waiting: dead-lettered at once.
    const dead = result.refused || attempt >= this.options.maxAttempts;
    const nextAttemptAt = dead ? null : this.now() + this.backoff(attempt);
    this.metrics.failed.inc({ reason: result.refused ? 'refused' : result.status === null ? 'network' : 'status' });
    if (dead) this.metrics.deadLettered.inc();
    // No secret, header or URL path here (Slack-style URLs carry a secret in their path).
    this.logger.warn(
      {
        webhook: webhook.id,
        target: originOf(webhook.url),
        delivery: delivery.id,
        event: event.id,
        type: event.type,
        attempt,
        status: result.status,
        error: result.error,
        latencyMs: Math.round(result.latencyMs),
        ...(dead ? { deadLettered: true } : { nextAttemptAt: new Date(nextAttemptAt!).toISOString() }),
      },
      'webhook delivery attempt failed',
    );
    await this.finish(delivery, outcome, { state: dead ? 'dead' : 'pending', nextAttemptAt });
  }

  private async finish(delivery: ClaimedDelivery, outcome: Parameters<EventQueries['finish']>[2], next: Parameters<EventQueries['finish']>[3]): Promise<void> {
    if (!(await this.events.finish(delivery.id, delivery.leaseUntil, outcome, next))) {
      this.logger.warn({ delivery: delivery.id }, 'webhook delivery lease expired before the attempt was recorded; it may be sent again');
    }
  }

  /** The delay before attempt `attempt + 1`: exponential, with ±50% jitter, capped. */
  private backoff(attempt: number): number {
    const base = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** (attempt - 1));
    return Math.round(base * (0.5 + this.random()));
  }

  private trip(webhookId: string): void {
    const breaker = this.breakers.get(webhookId) ?? { failures: 0, openUntil: 0 };
    breaker.failures++;
    if (breaker.failures >= this.options.breakerThreshold) {
      breaker.openUntil = this.now() + this.options.breakerCooldownMs;
      breaker.failures = 0;
      this.logger.warn({ webhook: webhookId, until: new Date(breaker.openUntil).toISOString() }, 'webhook circuit breaker open: too many consecutive failures');
    }
    this.breakers.set(webhookId, breaker);
  }
}

/** The dispatcher's Prometheus metrics. */
class DispatcherMetrics {
  readonly produced: client.Counter;
  readonly delivered: client.Counter<'format'>;
  readonly failed: client.Counter<'reason'>;
  readonly deadLettered: client.Counter;
  readonly latency: client.Histogram<'outcome'>;

  constructor(registry: client.Registry, pending: () => Promise<number>) {
    this.produced = new client.Counter({ name: 'stowage_events_produced_total', help: 'Events taken from the outbox and matched against webhooks (each event counted once across nodes)', registers: [registry] });
    this.delivered = new client.Counter({ name: 'stowage_webhook_deliveries_delivered_total', help: 'Webhook deliveries answered with 2xx, by payload format', labelNames: ['format'], registers: [registry] });
    this.failed = new client.Counter({ name: 'stowage_webhook_delivery_failures_total', help: 'Failed webhook delivery attempts: refused (SSRF rule), network (no answer) or status (non-2xx)', labelNames: ['reason'], registers: [registry] });
    this.deadLettered = new client.Counter({ name: 'stowage_webhook_deliveries_dead_total', help: 'Webhook deliveries dead-lettered after their last attempt', registers: [registry] });
    this.latency = new client.Histogram({
      name: 'stowage_webhook_delivery_duration_seconds',
      help: 'Webhook delivery attempt latency',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    new client.Gauge({
      name: 'stowage_webhook_deliveries_queued',
      help: 'Webhook deliveries waiting to be delivered (pending, retrying included)',
      registers: [registry],
      // Read from the database: the same in every process of a node, so never added up.
      aggregator: 'first',
      async collect() {
        this.set(await pending());
      },
    });
  }
}
