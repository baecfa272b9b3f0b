import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { SigningKeyQueries, SigningKeyRecord } from '../metadata/control-store.js';

interface LoadedKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  createdAt: Date;
  retiredAt: Date | null;
}

export interface KeyringOptions {
  /** Lifetime of the tokens signed: a retired key verifies this long after its retirement. */
  tokenTtlMs: number;
  /** How often the active key is re-read (another process may have rotated). Default 30 s. */
  refreshMs?: number;
  now?: () => number;
}

/** Allowance for clocks of nodes that differ a little. */
const CLOCK_SKEW_MS = 60_000;

/**
 * The ES256 keys that sign and verify tokens. They live in the database, so that every worker
 * and node signs with the same key and verifies the others' tokens: the first start creates one
 * (once, whoever wins the race), a rotation retires the active key and adds a new one, and a
 * retired key keeps verifying until the tokens it signed have expired. Keys are cached in
 * memory; an unknown `kid` triggers a reload (at most once a second), and the active key is
 * re-read every `refreshMs`.
 */
export class SigningKeyring {
  private keys = new Map<string, LoadedKey>();
  private active: LoadedKey | undefined;
  private loadedAt = 0;
  private lastMissReload = 0;
  private loading: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly refreshMs: number;

  constructor(
    private readonly store: SigningKeyQueries,
    private readonly options: KeyringOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.refreshMs = options.refreshMs ?? 30_000;
  }

  /** Loads the keys, creating the first one if the database has none. */
  async init(): Promise<void> {
    await this.reload();
    if (this.active) return;
    await this.store.insertInitial(await newKeyRecord(new Date(this.now())));
    await this.reload();
    if (!this.active) throw new Error('no active token signing key after creating one');
  }

  /** The key to sign with now. */
  async signingKey(): Promise<{ kid: string; key: KeyObject }> {
    if (!this.active || this.now() - this.loadedAt > this.refreshMs) await this.reload();
    if (!this.active) throw new Error('no active token signing key');
    return { kid: this.active.kid, key: this.active.privateKey };
  }

  /** The public key of `kid` if it may still verify tokens; undefined otherwise. */
  async verificationKey(kid: string): Promise<KeyObject | undefined> {
    let key = this.keys.get(kid);
    if (!key && this.now() - this.lastMissReload > 1000) {
      this.lastMissReload = this.now();
      await this.reload();
      key = this.keys.get(kid);
    }
    if (!key) return undefined;
    if (key.retiredAt && key.retiredAt.getTime() + this.options.tokenTtlMs + CLOCK_SKEW_MS < this.now()) return undefined;
    return key.publicKey;
  }

  /** Synchronous lookup for the hot path: the cached key of `kid`, if any. */
  cachedVerificationKey(kid: string): KeyObject | undefined {
    const key = this.keys.get(kid);
    if (!key || (key.retiredAt && key.retiredAt.getTime() + this.options.tokenTtlMs + CLOCK_SKEW_MS < this.now())) return undefined;
    return key.publicKey;
  }

  /** Retires the active key and signs with a new one from now on; resolves to the new kid. */
  async rotate(): Promise<string> {
    const record = await newKeyRecord(new Date(this.now()));
    await this.store.rotate(record);
    await this.reload();
    return record.kid;
  }

  /** Keys that still verify, newest first (public parts only). */
  async list(): Promise<{ kid: string; createdAt: Date; retiredAt: Date | null; active: boolean; publicJwk: JWK }[]> {
    await this.reload();
    return [...this.keys.values()].map((k) => ({
      kid: k.kid,
      createdAt: k.createdAt,
      retiredAt: k.retiredAt,
      active: k === this.active,
      publicJwk: k.publicKey.export({ format: 'jwk' }) as JWK,
    }));
  }

  /** Deletes keys retired long enough ago that no token they signed is still valid. */
  async purge(): Promise<number> {
    return this.store.purgeRetired(new Date(this.now() - this.options.tokenTtlMs - CLOCK_SKEW_MS));
  }

  private reload(): Promise<void> {
    this.loading ??= this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    const records = await this.store.list(new Date(this.now() - this.options.tokenTtlMs - CLOCK_SKEW_MS));
    const keys = new Map<string, LoadedKey>();
    for (const record of records) {
      const existing = this.keys.get(record.kid);
      keys.set(record.kid, existing ? { ...existing, retiredAt: record.retiredAt } : loadKey(record));
    }
    this.keys = keys;
    // Newest active key first (the list is ordered newest first).
    this.active = [...keys.values()].find((k) => k.retiredAt === null);
    this.loadedAt = this.now();
  }
}

function loadKey(record: SigningKeyRecord): LoadedKey {
  return {
    kid: record.kid,
    privateKey: createPrivateKey({ key: JSON.parse(record.privateJwk) as JWK & { kty: string }, format: 'jwk' }),
    publicKey: createPublicKey({ key: JSON.parse(record.publicJwk) as JWK & { kty: string }, format: 'jwk' }),
    createdAt: record.createdAt,
    retiredAt: record.retiredAt,
  };
}

async function newKeyRecord(createdAt: Date): Promise<Omit<SigningKeyRecord, 'retiredAt'>> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicJwk = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  return {
    kid,
    privateJwk: JSON.stringify(privateKey.export({ format: 'jwk' })),
    publicJwk: JSON.stringify({ ...publicJwk, kid, alg: 'ES256', use: 'sig' }),
    createdAt,
  };
}
