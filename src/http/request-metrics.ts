import client from 'prom-client';

/** Latency buckets of `stowage_http_request_duration_seconds` (upper bounds, seconds). */
export const durationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What one (method, route) pair has counted. */
interface RouteTally {
  method: string;
  route: string;
  /** Observations per latency bucket (not cumulative); the last slot is above every bound. */
  buckets: Float64Array;
  seconds: number;
  count: number;
  byStatus: Map<number, number>;
}

/**
 * The per-request HTTP metrics, counted with plain numbers in maps keyed by the method, route
 * and status (strings that are the same objects from one request to the next, so a lookup does
 * not hash a new string) and turned into Prometheus series only when scraped. prom-client's own
 * counters and histograms build a key string from the label values on every update: four updates
 * per request were 3–4% of a manifest GET's CPU.
 *
 * The series are the ones prom-client's Counter and Histogram would give (same names, labels and
 * buckets), so the node-wide aggregation (`AggregatorRegistry.aggregate`) adds them up as before.
 */
export class RequestMetrics {
  private readonly routes = new Map<string, Map<string, RouteTally>>();
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(registry: client.Registry) {
    const tallies = () => this.tallies();
    // Counters filled from the tallies at scrape time: the totals only grow, so setting them
    // (reset, then add the total) gives exactly what counting each request would have.
    new client.Counter({
      name: 'stowage_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const tally of tallies()) {
          for (const [status, count] of tally.byStatus) this.inc({ method: tally.method, route: tally.route, status }, count);
        }
      },
    });
    registry.registerMetric(new DurationHistogram(tallies) as unknown as client.Metric);
    const totals = () => ({ bytesIn: this.bytesIn, bytesOut: this.bytesOut });
    new client.Counter({
      name: 'stowage_http_received_bytes_total',
      help: 'Bytes received on HTTP connections (headers included)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(totals().bytesIn);
      },
    });
    new client.Counter({
      name: 'stowage_http_sent_bytes_total',
      help: 'Bytes sent on HTTP connections (headers included)',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(totals().bytesOut);
      },
    });
  }

  /** One finished request. */
  record(method: string, route: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void {
    let byRoute = this.routes.get(method);
    if (!byRoute) this.routes.set(method, (byRoute = new Map()));
    let tally = byRoute.get(route);
    if (!tally) {
      tally = { method, route, buckets: new Float64Array(durationBuckets.length + 1), seconds: 0, count: 0, byStatus: new Map() };
      byRoute.set(route, tally);
    }
    let bucket = 0;
    while (bucket < durationBuckets.length && seconds > durationBuckets[bucket]!) bucket++;
    tally.buckets[bucket]! += 1;
    tally.seconds += seconds;
    tally.count += 1;
    tally.byStatus.set(status, (tally.byStatus.get(status) ?? 0) + 1);
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
  }

  private *tallies(): Iterable<RouteTally> {
    for (const byRoute of this.routes.values()) yield* byRoute.values();
  }
}

/** `stowage_http_request_duration_seconds`, read from the tallies in prom-client's metric form. */
class DurationHistogram {
  readonly name = 'stowage_http_request_duration_seconds';
  readonly help = 'HTTP request latency by method and route';
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;

  constructor(private readonly tallies: () => Iterable<RouteTally>) {}

  get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const { method, route, buckets, seconds, count } of this.tallies()) {
      let cumulative = 0;
      durationBuckets.forEach((le, i) => {
        cumulative += buckets[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, method, route }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', method, route }, value: count });
      values.push({ metricName: `${this.name}_sum`, labels: { method, route }, value: seconds });
      values.push({ metricName: `${this.name}_count`, labels: { method, route }, value: count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The tallies are the record (as for the counters above, which are set from them at each scrape). */
  reset(): void {}
}
