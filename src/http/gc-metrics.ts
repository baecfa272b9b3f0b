import client from 'prom-client';
import type { GcTotals } from '../metadata/gc-store.js';

/**
 * Garbage collection metrics, read from the runs recorded in the database at scrape time (one
 * query per scrape), so that every process and node reports the same totals whoever ran the
 * collection (a run on another node shows up too).
 */
export function gcMetrics(registry: client.Registry, totals: () => Promise<GcTotals>): void {
  let pending: Promise<GcTotals> | undefined;
  const read = () => {
    pending ??= totals().finally(() => setTimeout(() => (pending = undefined), 100).unref());
    return pending;
  };
  /** A counter that follows a total read from the database. */
  const counter = (name: string, help: string, values: (t: GcTotals) => Record<string, number>, labelNames: string[] = []) => {
    const reported = new Map<string, number>();
    new client.Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      // Read from the database: the same in every process of a node, so never added up.
      aggregator: 'first',
      async collect() {
        for (const [label, value] of Object.entries(values(await read()))) {
          const delta = value - (reported.get(label) ?? 0);
          if (delta > 0) this.inc(labelNames.length > 0 ? { [labelNames[0]!]: label } : {}, delta);
          reported.set(label, value);
        }
      },
    });
  };
  counter('stowage_gc_runs_total', 'Finished garbage collection runs by result (succeeded, failed)', (t) => t.runs, ['result']);
  counter('stowage_gc_blobs_freed_total', 'Blobs deleted by garbage collection', (t) => ({ '': t.blobsFreed }));
  counter('stowage_gc_bytes_freed_total', 'Bytes of blobs deleted by garbage collection', (t) => ({ '': t.bytesFreed }));
  counter('stowage_gc_duration_seconds_total', 'Time spent in finished garbage collection runs', (t) => ({ '': t.seconds }));
  new client.Gauge({
    name: 'stowage_gc_last_run_duration_seconds',
    help: 'Duration of the last finished garbage collection run',
    registers: [registry],
    aggregator: 'first',
    async collect() {
      this.set((await read()).lastSeconds);
    },
  });
}
