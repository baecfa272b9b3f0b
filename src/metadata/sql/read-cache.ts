/**
 * A bounded in-process cache of hot metadata reads (manifest GET, blob HEAD) that is exact, not
 * merely fresh: every entry belongs to one version of the database, and any change anywhere in
 * the database — committed by this process or by another one — drops every entry before the
 * next read. So it never answers with a tag that moved or a manifest or blob that was deleted.
 *
 * `version` must change whenever the database may have changed, and must be read cheaply on
 * every lookup. SQLite gives this (`PRAGMA data_version` plus a count of this connection's own
 * writes, see sqlite.ts); PostgreSQL does not without a round trip, so scale-out nodes run
 * without this cache.
 */
export class VersionedReadCache<V> {
  private readonly entries = new Map<string, V>();
  private version: number | undefined;
  private bytes = 0;

  constructor(
    private readonly currentVersion: () => number,
    private readonly limits: { maxEntries: number; maxBytes: number; sizeOf: (value: V) => number },
  ) {}

  /** The cached value for `key`, or `load()`'s (cached when found and small enough). */
  async get(key: string, load: () => Promise<V | null>): Promise<V | null> {
    // Read the version before loading: a change that commits while the load runs then moves
    // the version past the one the entry is stored under, so the entry is never served.
    const version = this.currentVersion();
    if (version !== this.version) this.reset(version);
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const value = await load();
    if (value !== null && this.version === version) this.store(key, value);
    return value;
  }

  private reset(version: number): void {
    this.entries.clear();
    this.bytes = 0;
    this.version = version;
  }

  private store(key: string, value: V): void {
    const size = this.limits.sizeOf(value);
    if (size > this.limits.maxBytes / 16) return; // a rare large manifest would evict the hot ones
    this.entries.set(key, value);
    this.bytes += size;
    // Oldest first (insertion order): the set is rebuilt from scratch after every change anyway.
    for (const [oldKey, oldValue] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.entries.delete(oldKey);
      this.bytes -= this.limits.sizeOf(oldValue);
    }
  }
}
