import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hash, verify, type Algorithm } from '@node-rs/argon2';

/**
 * Prefixes of the secrets Stowage issues, so that a leaked one is recognisable (secret scanners)
 * and a password can be told from a token without a database lookup.
 */
export const secretPrefix = {
  personalToken: 'stw_pat_',
  robot: 'stw_robot_',
  refresh: 'stw_refresh_',
  session: 'stw_session_',
} as const;

/** 256 random bits, base64url, behind a recognisable prefix. */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/**
 * SHA-256 (hex) of a high-entropy secret, as stored: a 256-bit random secret needs no slow hash,
 * and a hash lookup reveals nothing about other secrets.
 */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time equality of two strings (by their SHA-256, so lengths leak nothing either). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

// argon2id with OWASP's parameters: 19 MiB, 2 passes, 1 lane (about 15 ms here).
const ARGON2ID = 2 as Algorithm;
const argonOptions = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export const passwordRules = { min: 8, max: 1024 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, argonOptions);
}

/** A hash of a random password, verified against when the user does not exist, to equalise timing. */
let dummyHash: Promise<string> | undefined;

/**
 * Verifies a password against an argon2id hash in constant time. With no hash (unknown user, or
 * one without a local password) it still spends the same time, so that timing does not tell
 * whether a user exists.
 */
export async function verifyPassword(storedHash: string | null, password: string): Promise<boolean> {
  if (storedHash === null) {
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  try {
    return await verify(storedHash, password);
  } catch {
    return false;
  }
}

/** A generated password: 24 base64url characters (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
