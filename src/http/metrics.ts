import client from 'prom-client';
import type { GcTotals } from '../metadata/gc-store.js';
import { gcMetrics } from './gc-metrics.js';
import { RequestMetrics } from './request-metrics.js';

/**
 * Prometheus metrics of one server process. Gauges that need the database are computed at scrape
 * time and are the same in every process of a node, so they are not added up across processes
 * (`aggregator: 'first'`); per-process counters and histograms are.
 */
export class Metrics {
  readonly registry = new client.Registry();
  /** The metrics of every process of the node (see `nodeWide`); unset: this process alone. */
  private gatherNode: (() => Promise<unknown[][]>) | undefined;
  /** Requests, their latency and bytes: counted per request, turned into series when scraped. */
  readonly http = new RequestMetrics(this.registry);

  constructor(gauges: {
    uploadsInProgress: () => Promise<number>;
    storageUsedBytes: () => Promise<number>;
    /** Requests sent to a remote blob store so far, by operation (S3). */
    objectStoreRequests?: () => Record<string, number>;
    /** Garbage collection totals over every finished run (from the database: all nodes). */
    gcTotals?: () => Promise<GcTotals>;
  }) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'stowage_' });
    new client.Gauge({
      name: 'stowage_uploads_in_progress',
      help: 'Open blob upload sessions',
      registers: [this.registry],
      aggregator: 'first',
      async collect() {
        this.set(await gauges.uploadsInProgress());
      },
    });
    new client.Gauge({
      name: 'stowage_storage_used_bytes',
      help: 'Bytes of committed blobs',
      registers: [this.registry],
      aggregator: 'first',
      async collect() {
        this.set(await gauges.storageUsedBytes());
      },
    });
    if (gauges.gcTotals) gcMetrics(this.registry, gauges.gcTotals);
    const objectStoreRequests = gauges.objectStoreRequests;
    if (objectStoreRequests) {
      const reported = new Map<string, number>();
      new client.Counter({
        name: 'stowage_object_store_requests_total',
        help: 'Requests sent to the object store (S3) by operation, retries included',
        labelNames: ['operation'] as const,
        registers: [this.registry],
        collect() {
          for (const [operation, count] of Object.entries(objectStoreRequests())) {
            const delta = count - (reported.get(operation) ?? 0);
            if (delta > 0) this.inc({ operation }, delta);
            reported.set(operation, count);
          }
        },
      });
    }
  }

  /**
   * Answer `/metrics` for the whole node: a scrape lands on whichever process accepted the
   * connection, and each process counts only the requests it served, so without this the
   * counters would jump between the processes' values from one scrape to the next.
   */
  nodeWide(gather: () => Promise<unknown[][]>): void {
    this.gatherNode = gather;
  }

  /** The Prometheus text of this process, or of the node's processes added up. */
  async exposition(): Promise<string> {
    if (!this.gatherNode) return this.registry.metrics();
    const all = (await this.gatherNode()) as Parameters<typeof client.AggregatorRegistry.aggregate>[0];
    return client.AggregatorRegistry.aggregate(all).metrics();
  }

  /** This process's metrics in the form that `nodeWide` gathers. */
  own(): Promise<unknown[]> {
    return this.registry.getMetricsAsJSON();
  }
}
