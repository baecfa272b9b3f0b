/** A per-process cache of hot metadata lookups: `get` answers from it or from `load()`. */
export interface ReadCache<V> {
  get(key: string, load: () => Promise<V | null>): Promise<V | null>;
}

interface CacheLimits<V> {
  maxEntries: number;
  maxBytes: number;
  sizeOf: (value: V) => number;
}

/**
 * A bounded in-process cache of hot metadata reads (manifest GET, blob HEAD) that is exact, not
 * merely fresh: every entry belongs to one version of the database's content, and any change
 * that can alter a cached answer — committed by this process or by another one — drops every
 * entry before the next read. So it never answers with a tag that moved or a manifest or blob
 * that was deleted.
 *
 * `version` must change whenever such a change may have committed, and must be read cheaply on
 * every lookup. SQLite gives this (a read of the WAL-index header, then `PRAGMA data_version` plus
 * a count of this connection's own writes, and behind them the `content_version` counter; see
 * sqlite.ts); PostgreSQL does not without a round trip, so scale-out nodes use TimedReadCache
 * instead.
 */
export class VersionedReadCache<V> implements ReadCache<V> {
  private readonly entries: BoundedEntries<V>;
  private version: number | undefined;

  constructor(
    private readonly currentVersion: () => number,
    limits: CacheLimits<V>,
  ) {
    this.entries = new BoundedEntries(limits);
  }

  /** The cached value for `key`, or `load()`'s (cached when found and small enough). */
  async get(key: string, load: () => Promise<V | null>): Promise<V | null> {
    // Read the version before loading: a change that commits while the load runs then moves
    // the version past the one the entry is stored under, so the entry is never served.
    const version = this.currentVersion();
    if (version !== this.version) this.reset(version);
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const value = await load();
    if (value !== null && this.version === version) this.entries.set(key, value);
    return value;
  }

  private reset(version: number): void {
    this.entries.clear();
    this.version = version;
  }
}

/**
 * The scale-out nodes' cache (PostgreSQL has no cheap change check): an entry answers for at most
 * `ttlMs`, counted from the moment its lookup was sent, so its answer is at most that old. Every
 * change that can make a cached answer wrong — a moved or deleted tag, a deleted manifest, an
 * unlinked blob, a deleted repository or project — waits `ttlMs` after its commit before it
 * returns (`settle`), on every node. So once a change has been acknowledged, every entry loaded
 * before it has expired on every node: no node answers for content deleted through another one.
 * Only found values are cached: a lookup that found nothing asks again next time, so new content
 * is visible at once.
 */
export class TimedReadCache<V> implements ReadCache<V> {
  private readonly entries: BoundedEntries<{ value: V; loadedAt: number }>;

  constructor(
    private readonly ttlMs: number,
    limits: CacheLimits<V>,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.entries = new BoundedEntries({ ...limits, sizeOf: (entry) => limits.sizeOf(entry.value) });
  }

  async get(key: string, load: () => Promise<V | null>): Promise<V | null> {
    const hit = this.entries.get(key);
    if (hit !== undefined && this.clock() - hit.loadedAt < this.ttlMs) return hit.value;
    // Counted from before the lookup: the database answers as of some moment after this one.
    const loadedAt = this.clock();
    const value = await load();
    if (value !== null) this.entries.set(key, { value, loadedAt });
    else if (hit !== undefined) this.entries.delete(key);
    return value;
  }
}

/**
 * Resolves no earlier than `ms` after the call. A timer alone may fire a little early: Node
 * counts it from the event loop's cached time, which can lag the moment of the call.
 */
export async function waitAtLeast(ms: number, clock: () => number = () => performance.now()): Promise<void> {
  const end = clock() + ms;
  for (let now = clock(); now < end; now = clock()) await new Promise((resolve) => setTimeout(resolve, Math.ceil(end - now)));
}

/** Entries in insertion order, dropped oldest first beyond the count or byte bound. */
class BoundedEntries<V> {
  private readonly map = new Map<string, V>();
  private bytes = 0;

  constructor(private readonly limits: CacheLimits<V>) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  set(key: string, value: V): void {
    const size = this.limits.sizeOf(value);
    if (size > this.limits.maxBytes / 16) return; // a rare large manifest would evict the hot ones
    this.delete(key);
    this.map.set(key, value);
    this.bytes += size;
    for (const [oldKey] of this.map) {
      if (this.map.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.delete(oldKey);
    }
  }

  delete(key: string): void {
    const old = this.map.get(key);
    if (old === undefined) return;
    this.map.delete(key);
    this.bytes -= this.limits.sizeOf(old);
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}
