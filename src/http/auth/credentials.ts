import type { FastifyRequest } from 'fastify';
import type { Credentials } from '../../auth/authenticators.js';

export type PresentedCredentials =
  | { scheme: 'none' }
  | { scheme: 'bearer'; token: string }
  | { scheme: 'basic'; credentials: Credentials }
  | { scheme: 'invalid' };

/** What the Authorization header presents (never logged: the request log omits headers). */
export function presentedCredentials(request: FastifyRequest): PresentedCredentials {
  const header = request.headers.authorization;
  if (header === undefined || header === '') return { scheme: 'none' };
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space === -1 ? undefined : space).toLowerCase();
  const value = space === -1 ? '' : header.slice(space + 1).trim();
  if (scheme === 'bearer' && value !== '' && value.length <= 8192) return { scheme: 'bearer', token: value };
  if (scheme === 'basic') {
    const credentials = decodeBasic(value);
    return credentials ? { scheme: 'basic', credentials } : { scheme: 'invalid' };
  }
  return { scheme: 'invalid' };
}

export function decodeBasic(value: string): Credentials | null {
  if (value.length > 4096 || !/^[A-Za-z0-9+/=]*$/.test(value)) return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The client address (X-Forwarded-For only from trusted proxies: Fastify's trustProxy). */
export function clientAddress(request: FastifyRequest): string {
  return request.ip;
}
