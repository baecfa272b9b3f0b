import type { RevocationQueries } from '../metadata/control-store.js';

export interface RevocationListOptions {
  /** How often the database is polled for revocations made by other processes. Default 2 s. */
  pollMs?: number;
  /** How long revocations are kept: at least the longest life of what they void. */
  keepMs: number;
  now?: () => number;
}

/**
 * Revocations of subjects (`user:<id>`, `robot:<id>`, `pat:<id>`): a token or cached credential
 * of a subject issued at or before its revocation is void. Kept in the database, so that every
 * worker and node honours them; each process polls for new ones (one indexed query every
 * `pollMs`) and keeps them in memory, so checking costs no query. A revocation made in this
 * process applies here at once, elsewhere within `pollMs`.
 */
export class RevocationList {
  private readonly entries = new Map<string, number>();
  private readonly listeners: (() => void)[] = [];
  private lastPoll = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly store: RevocationQueries,
    private readonly options: RevocationListOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Loads the current revocations and starts polling. */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll().catch(() => undefined), this.options.pollMs ?? 2000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Called after new revocations arrive (to drop caches that may hold revoked credentials). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async revoke(subject: string): Promise<void> {
    await this.store.revoke(subject);
    this.entries.set(subject, this.now());
    this.changed();
  }

  /** Whether any of the subjects was revoked at or after `issuedAtMs`. */
  revoked(subjects: readonly string[], issuedAtMs: number): boolean {
    for (const subject of subjects) {
      const at = this.entries.get(subject);
      if (at !== undefined && at >= issuedAtMs) return true;
    }
    return false;
  }

  async poll(): Promise<void> {
    // Overlap the window: a revocation committed just before the previous poll read, or stamped
    // by a node whose clock is a little behind this one's.
    const since = new Date(Math.max(0, this.lastPoll - 60_000));
    const startedAt = this.now();
    let added = false;
    for (const { subject, at } of await this.store.since(since)) {
      const known = this.entries.get(subject);
      if (known === undefined || known < at.getTime()) {
        this.entries.set(subject, at.getTime());
        added = true;
      }
    }
    this.lastPoll = startedAt;
    const cutoff = this.now() - this.options.keepMs;
    for (const [subject, at] of this.entries) if (at < cutoff) this.entries.delete(subject);
    if (added) this.changed();
  }

  /** Removes revocations older than anything they could still void (one process a node). */
  async purge(): Promise<number> {
    return this.store.purge(new Date(this.now() - this.options.keepMs));
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
