import type { Logger } from 'pino';
import type { PullIncrement, PullStatsQueries } from '../metadata/housekeeping-store.js';
import { BatchedWrites } from './batched-writes.js';
import { TupleMap } from './tuple-map.js';

export interface PullRecorderOptions {
  /** Counts are written at most this long after a pull (default 2 s), or when `batchSize` keys wait. */
  flushMs?: number;
  batchSize?: number;
  now?: () => number;
}

/**
 * Pull statistics off the hot path: a manifest GET only bumps a counter in this process's memory;
 * the counters are added to the database in one transaction per batch (every `flushMs`). Each
 * worker process and node keeps its own buffer, so the database sees a pull within `flushMs`; a
 * crash loses at most that much counting (the audit log, when on, still has every pull).
 */
export class PullRecorder {
  /** Counts by repository, digest and tag ('' for a pull by digest). */
  private readonly buffer = new TupleMap<PullIncrement>(3);
  private readonly writes: BatchedWrites<PullIncrement>;
  private readonly now: () => number;
  private logger: Pick<Logger, 'error'> | undefined;

  constructor(
    private readonly store: PullStatsQueries,
    options: PullRecorderOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.writes = new BatchedWrites({
      flushMs: options.flushMs ?? 2000,
      batchSize: options.batchSize ?? 1000,
      take: () => {
        const batch = this.buffer.values();
        this.buffer.clear();
        return batch;
      },
      write: (batch) => this.store.add(batch),
      failed: (error, entries) => this.logger?.error({ err: error, entries }, 'writing pull statistics failed'),
    });
  }

  /** Where failed writes are reported (they never fail a request). */
  logTo(logger: Pick<Logger, 'error'>): void {
    this.logger = logger;
  }

  /** A manifest pull: by digest (`tag` null) or through a tag. */
  record(repository: string, digest: string, tag: string | null): void {
    const key = [repository, digest, tag ?? ''];
    const at = this.now();
    const seen = this.buffer.get(key);
    if (seen) {
      seen.count += 1;
      seen.lastAt = at;
    } else this.buffer.set(key, { repository, digest, tag, count: 1, lastAt: at });
    this.writes.recorded(this.buffer.size);
  }

  /** Writes what is buffered; resolves when every pull recorded before the call is stored. */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  /**
   * Adds pull counts to tags of a listing: through the tag (`pulls`, `lastPulledAt`) and of the
   * manifest it names, by any reference (`manifestPulls`, `manifestLastPulledAt`). This
   * process's buffer is written first; other processes' pulls show within their flush interval.
   */
  async annotate<T extends { name: string; digest: string }>(repository: string, tags: T[]): Promise<(T & PullFields)[]> {
    await this.flush();
    const byTag = await this.store.tags(repository, tags.map((t) => t.name));
    const byDigest = await this.store.manifests(repository, [...new Set(tags.map((t) => t.digest))]);
    return tags.map((t) => {
      const tag = byTag.get(t.name);
      const manifest = byDigest.get(t.digest);
      return { ...t, pulls: tag?.pulls ?? 0, lastPulledAt: tag?.lastPulledAt ?? null, manifestPulls: manifest?.pulls ?? 0, manifestLastPulledAt: manifest?.lastPulledAt ?? null };
    });
  }
}

export interface PullFields {
  pulls: number;
  lastPulledAt: Date | null;
  manifestPulls: number;
  manifestLastPulledAt: Date | null;
}
