import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.js';

/** Algorithms we accept, with the exact hex length of their canonical encoding. */
const algorithms = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof algorithms;

const digestPattern = /^(sha256|sha512):([a-f0-9]+)$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** Parses a canonical digest, or returns null (unknown algorithm, wrong length, upper case...). */
export function parseDigest(value: string): ParsedDigest | null {
  const match = digestPattern.exec(value);
  if (!match) return null;
  const algorithm = match[1] as DigestAlgorithm;
  const hex = match[2]!;
  return hex.length === algorithms[algorithm] ? { algorithm, hex } : null;
}

/** Validates a digest from a request, throwing DIGEST_INVALID. */
export function requireDigest(value: string | undefined, what = 'digest'): ParsedDigest {
  const parsed = value === undefined ? null : parseDigest(value);
  if (!parsed) {
    throw new RegistryError(
      'DIGEST_INVALID',
      `invalid ${what}: expected sha256:<64 hex> or sha512:<128 hex>`,
      { digest: value ?? null },
    );
  }
  return parsed;
}

export function createDigester(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(bytes: Buffer, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}
