import type { Logger } from 'pino';
import type { Actor } from '../auth/principal.js';
import type { EventQueries, EventType, NewEvent, WriteContext } from '../metadata/events-store.js';
import { writeContextOf } from './context.js';
import { BatchedWrites } from '../control/batched-writes.js';
import { TupleMap } from '../control/tuple-map.js';

export type PullEventMode = 'off' | 'all' | 'sample' | 'aggregate';

export interface EventRecorderOptions {
  node: string;
  pulls?: PullEventMode;
  /** With `sample`: the share of pulls that become events. */
  pullSampleRate?: number;
  /** With `aggregate`: one event per repository and digest per window. */
  pullWindowMs?: number;
  /** Buffered pull events are written after this long. */
  flushMs?: number;
  random?: () => number;
}

/** What control-plane code reports: the type and the facts it knows (the rest is null). */
export type ControlEvent = { type: EventType; actor?: Actor | null } & Partial<Omit<NewEvent, 'type' | 'actor' | 'actorKind' | 'address' | 'node'>>;

interface Aggregate {
  event: NewEvent;
  count: number;
}

/**
 * Events that do not come from a registry transaction.
 *
 * - `prepare()` completes a control-plane event (project and member changes) for the store method
 *   that makes the change, which writes it in the change's own transaction.
 * - `emit()` reports what is not one transaction: garbage collection and retention runs
 *   (`emit({ type: 'gc.finished', detail: {...} })` / `'retention.finished'`), quota refusals. The
 *   event is written to the outbox at once, after the fact; it is delivered like every other
 *   event. (Registry changes — pushes, tag moves, deletions — write their events inside their
 *   own transaction too.)
 * - `pulled()` records a manifest pull without touching the pull's path: nothing is awaited, the
 *   events are buffered and written in batches, sampled or aggregated per `events.pulls`. A crash
 *   can lose the last fraction of a second (or window) of pull events — never a push's.
 */
export class EventRecorder {
  private buffer: NewEvent[] = [];
  /** Pulls of the window by repository and digest. */
  private readonly aggregates = new TupleMap<Aggregate>(2);
  private readonly writes: BatchedWrites<NewEvent>;
  private windowTimer: NodeJS.Timeout | undefined;
  private readonly mode: PullEventMode;
  private readonly random: () => number;

  private logger: Pick<Logger, 'error'> = { error: () => {} };

  constructor(
    private readonly events: EventQueries,
    private readonly options: EventRecorderOptions,
  ) {
    this.mode = options.pulls ?? 'aggregate';
    this.random = options.random ?? Math.random;
    this.writes = new BatchedWrites({
      flushMs: options.flushMs ?? 500,
      batchSize: 500,
      take: () => this.buffer.splice(0),
      write: async (batch) => {
        await this.events.append(batch);
      },
      failed: (error, events) => this.logger.error({ err: error, events }, 'writing pull events failed'),
    });
  }

  /** Where failures to write events are reported (the serving process's logger). */
  logTo(logger: Pick<Logger, 'error'>): void {
    this.logger = logger;
  }

  /** Writes a control-plane event to the outbox (see the class comment). Never throws: a failure is logged. */
  async emit(event: ControlEvent): Promise<void> {
    try {
      await this.events.append([this.complete(event)]);
    } catch (error) {
      this.logger.error({ err: error, type: event.type }, 'writing an event to the outbox failed');
    }
  }

  /** A manifest pull (GET): costs the pull a few map operations at most. */
  pulled(actor: Actor, repository: string, manifest: { digest: string; mediaType: string | null; size: number | null }, tag: string | null): void {
    if (this.mode === 'off') return;
    if (this.mode === 'sample' && this.random() >= (this.options.pullSampleRate ?? 0.1)) return;
    if (this.mode === 'aggregate') {
      // A repeated pull of the window only counts: the event is built for the first one.
      const key = [repository, manifest.digest];
      const existing = this.aggregates.get(key);
      if (existing) existing.count++;
      else this.aggregates.set(key, { event: this.pullEvent(actor, repository, manifest, tag), count: 1 });
      if (!this.windowTimer) {
        this.windowTimer = setTimeout(() => void this.closeWindow(), this.options.pullWindowMs ?? 60_000);
        this.windowTimer.unref();
      }
      return;
    }
    this.buffer.push(this.pullEvent(actor, repository, manifest, tag));
    this.writes.recorded(this.buffer.length);
  }

  private pullEvent(actor: Actor, repository: string, manifest: { digest: string; mediaType: string | null; size: number | null }, tag: string | null): NewEvent {
    return this.complete({
      type: 'artifact.pulled',
      actor,
      repository,
      project: repository.split('/', 1)[0]!,
      tag,
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.size,
      ...(this.mode === 'sample' ? { detail: { sampleRate: this.options.pullSampleRate ?? 0.1 } } : {}),
    });
  }

  /** Ends the current aggregation window: one event per repository and digest, with the count. */
  private closeWindow(): Promise<void> {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
    const windowMs = this.options.pullWindowMs ?? 60_000;
    for (const { event, count } of this.aggregates.values()) this.buffer.push({ ...event, detail: { count, windowMs } });
    this.aggregates.clear();
    return this.flush();
  }

  /** Writes buffered pull events (aggregates too, at shutdown); resolves when they are stored. */
  flush(includeWindow = false): Promise<void> {
    if (includeWindow && this.aggregates.size > 0) return this.closeWindow();
    return this.writes.flush();
  }

  /** Who writes and where, for the metadata calls of control-plane changes. */
  contextOf(actor: Actor): WriteContext {
    return writeContextOf(actor, this.options.node);
  }

  /** The event of "send test event": delivered only to the webhook that asked. */
  testEvent(actor: Actor, project: string | null): NewEvent {
    return this.complete({ type: 'webhook.test', actor, project, detail: { message: 'a test event from Stowage' } });
  }

  /**
   * A control-plane event ready to be written by the store method that makes the change, in the
   * same transaction (project and member changes): it then exists exactly when the change does.
   */
  prepare(event: ControlEvent): NewEvent {
    return this.complete(event);
  }

  private complete(event: ControlEvent): NewEvent {
    const context = event.actor ? writeContextOf(event.actor, this.options.node) : null;
    return {
      project: null,
      repository: null,
      tag: null,
      digest: null,
      previousDigest: null,
      mediaType: null,
      size: null,
      detail: null,
      ...event,
      actor: context?.actor ?? null,
      actorKind: context?.actorKind ?? 'system',
      address: context?.address ?? null,
      node: this.options.node,
    };
  }
}
