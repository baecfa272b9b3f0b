import type { Permission } from './access.js';

/** Nobody authenticated: may pull from public projects only. */
export interface AnonymousPrincipal {
  kind: 'anonymous';
  name: '';
}

export interface UserPrincipal {
  kind: 'user';
  id: string;
  name: string;
  admin: boolean;
  /**
   * Set when the user authenticated with a personal access token: the token's id and its
   * permissions, which limit what the user may do; `api` allows the management API.
   */
  personalToken?: { id: string; permissions: Permission[]; api: boolean };
}

export interface RobotPrincipal {
  kind: 'robot';
  id: string;
  name: string;
  /** The project the robot belongs to; null for a system robot. */
  project: string | null;
  permissions: Permission[];
}

/** Who makes a request. Authenticators produce it; the authorizer decides what it may do. */
export type Principal = AnonymousPrincipal | UserPrincipal | RobotPrincipal;

export const anonymous: AnonymousPrincipal = Object.freeze({ kind: 'anonymous', name: '' });

/** The principal with the source address of the request, for decisions and the audit log. */
export interface Actor {
  principal: Principal;
  address: string | null;
}

/** A system administrator acting directly on the database (the local CLI). */
export function systemActor(name: string): Actor {
  return { principal: { kind: 'user', id: '', name, admin: true }, address: null };
}

/** How the audit log names a principal. */
export function actorName(principal: Principal): string {
  return principal.kind === 'anonymous' ? 'anonymous' : principal.name;
}

/** Revocation subjects whose entries void this principal's tokens. */
export function revocationSubjects(principal: Principal): string[] {
  if (principal.kind === 'user') {
    return principal.personalToken ? [`user:${principal.id}`, `pat:${principal.personalToken.id}`] : [`user:${principal.id}`];
  }
  if (principal.kind === 'robot') return [`robot:${principal.id}`];
  return [];
}
