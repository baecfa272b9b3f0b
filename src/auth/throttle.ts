import type { LoginFailureQueries } from '../metadata/control-store.js';

export interface ThrottleOptions {
  perUser: number;
  perAddress: number;
  windowMs: number;
  now?: () => number;
}

export class TooManyFailuresError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`too many failed logins; retry in ${retryAfterSeconds} s`);
    this.name = 'TooManyFailuresError';
  }
}

/**
 * Limits failed logins per user name and per source address within a fixed window. Counters live
 * in the database, so that the limit holds across workers and nodes. A blocked login is refused
 * before its password is checked; a success clears the user's counter (not the address's, or an
 * attacker could reset it with an account of their own).
 */
export class LoginThrottle {
  private readonly now: () => number;

  constructor(
    private readonly store: LoginFailureQueries,
    private readonly options: ThrottleOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Throws TooManyFailuresError when the user or the address is over its limit. */
  async check(user: string | null, address: string | null): Promise<void> {
    const keys = this.keys(user, address);
    if (keys.length === 0) return;
    const counts = await this.store.counts(keys.map((k) => k.key), new Date(this.now() - this.options.windowMs));
    let retryAt = 0;
    for (const { key, limit } of keys) {
      const entry = counts.get(key);
      if (entry && entry.count >= limit) retryAt = Math.max(retryAt, entry.windowStart.getTime() + this.options.windowMs);
    }
    if (retryAt > 0) throw new TooManyFailuresError(Math.max(1, Math.ceil((retryAt - this.now()) / 1000)));
  }

  async failed(user: string | null, address: string | null): Promise<void> {
    const windowStart = new Date(this.now() - this.options.windowMs);
    for (const { key } of this.keys(user, address)) await this.store.record(key, windowStart);
  }

  async succeeded(user: string): Promise<void> {
    await this.store.clear(userKey(user));
  }

  async purge(): Promise<number> {
    return this.store.purge(new Date(this.now() - this.options.windowMs));
  }

  private keys(user: string | null, address: string | null): { key: string; limit: number }[] {
    const keys: { key: string; limit: number }[] = [];
    if (user) keys.push({ key: userKey(user), limit: this.options.perUser });
    if (address) keys.push({ key: `address:${address}`, limit: this.options.perAddress });
    return keys;
  }
}

function userKey(user: string): string {
  // Bounded: a login with a huge user name must not make a huge row.
  return `user:${user.slice(0, 300)}`;
}
