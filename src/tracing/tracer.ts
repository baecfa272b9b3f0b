import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/** OTLP span kinds and status codes (opentelemetry-proto trace.proto). */
export const SpanKind = { internal: 1, server: 2, client: 3 } as const;
const STATUS_OK = 1;
const STATUS_ERROR = 2;

export type AttributeValue = string | number | boolean;

export interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  startNs: bigint;
  endNs?: bigint;
  attributes: Record<string, AttributeValue>;
  error?: string;
}

/** Where finished spans go (the OTLP exporter). */
export interface SpanSink {
  add(span: Span): void;
}

/** The wall clock in nanoseconds: hrtime for precision, anchored once to Date.now(). */
const originNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
function nowNs(): bigint {
  return originNs + process.hrtime.bigint();
}

/**
 * A small tracer: spans in an AsyncLocalStorage, W3C `traceparent` in, finished spans to a sink.
 * Only built when tracing is configured, so that nothing of it runs otherwise.
 */
export class Tracer {
  private readonly current = new AsyncLocalStorage<Span>();

  constructor(private readonly sink: SpanSink) {}

  /** A new span, child of the active one (or of `parent`, e.g. from a traceparent header). */
  start(name: string, kind: number, attributes: Record<string, AttributeValue> = {}, parent?: { traceId: string; spanId: string }): Span {
    const active = parent ?? this.current.getStore();
    return {
      traceId: active?.traceId ?? randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      parentSpanId: active?.spanId,
      name,
      kind,
      startNs: nowNs(),
      attributes,
    };
  }

  end(span: Span, error?: unknown): void {
    if (span.endNs !== undefined) return;
    span.endNs = nowNs();
    if (error !== undefined) span.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.sink.add(span);
  }

  /** Makes `span` the active span of the current asynchronous execution from here on. */
  enter(span: Span): void {
    this.current.enterWith(span);
  }

  active(): Span | undefined {
    return this.current.getStore();
  }

  /** Runs `work` in a child span of the active one; without an active span, just runs it. */
  wrap<T>(name: string, attributes: Record<string, AttributeValue>, work: () => T): T {
    if (!this.current.getStore()) return work();
    const span = this.start(name, SpanKind.internal, attributes);
    let result: T;
    try {
      result = this.current.run(span, work);
    } catch (error) {
      this.end(span, error);
      throw error;
    }
    if (result && typeof (result as { then?: unknown }).then === 'function') {
      (result as unknown as Promise<unknown>).then(
        () => this.end(span),
        (error: unknown) => this.end(span, error),
      );
    } else {
      this.end(span);
    }
    return result;
  }
}

/** The parent of a request's span, from a W3C `traceparent` header. */
export function parseTraceparent(header: string | string[] | undefined): { traceId: string; spanId: string } | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(header.trim());
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined;
  return { traceId: match[1]!, spanId: match[2]! };
}

/** A span in OTLP/HTTP JSON (ids in hex, times as decimal strings). */
export function toOtlp(span: Span) {
  return {
    traceId: span.traceId,
    spanId: span.spanId,
    ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
    name: span.name,
    kind: span.kind,
    startTimeUnixNano: String(span.startNs),
    endTimeUnixNano: String(span.endNs ?? span.startNs),
    attributes: Object.entries(span.attributes).map(([key, value]) => ({
      key,
      value: typeof value === 'string' ? { stringValue: value } : typeof value === 'boolean' ? { boolValue: value } : Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value },
    })),
    status: span.error ? { code: STATUS_ERROR, message: span.error } : { code: STATUS_OK },
  };
}
