import type { Logger } from 'pino';
import { toOtlp, type Span, type SpanSink } from './tracer.js';

/** Spans kept while the collector is slow or down; more are dropped (and counted in the log). */
const MAX_QUEUE = 4096;
const BATCH = 512;

/**
 * Sends finished spans to an OTLP/HTTP collector (`<endpoint>/v1/traces`, JSON encoding) in
 * batches, every `intervalMs` or when a batch is full. Never blocks a request: a failed export
 * drops that batch and logs once per minute.
 */
export class OtlpExporter implements SpanSink {
  private queue: Span[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private dropped = 0;
  private lastComplaint = 0;
  private readonly url: string;

  constructor(
    endpoint: string,
    private readonly serviceName: string,
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly intervalMs = 1000,
  ) {
    this.url = `${endpoint.replace(/\/+$/, '')}/v1/traces`;
  }

  add(span: Span): void {
    if (this.queue.length >= MAX_QUEUE) {
      this.dropped++;
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= BATCH) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.intervalMs);
      this.timer.unref();
    }
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue.splice(0, this.queue.length);
    this.sending = this.sending.then(async () => {
      for (let i = 0; i < batch.length; i += BATCH) await this.send(batch.slice(i, i + BATCH));
    });
    return this.sending;
  }

  private async send(spans: Span[]): Promise<void> {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: this.serviceName } }] },
          scopeSpans: [{ scope: { name: 'stowage' }, spans: spans.map(toOtlp) }],
        },
      ],
    };
    try {
      const response = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
    } catch (error) {
      this.dropped += spans.length;
      if (Date.now() - this.lastComplaint > 60_000) {
        this.lastComplaint = Date.now();
        this.logger.warn({ err: error, dropped: this.dropped, collector: new URL(this.url).origin }, 'exporting trace spans failed; spans dropped');
      }
    }
  }
}
