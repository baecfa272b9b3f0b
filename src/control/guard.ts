import type { Access } from '../auth/access.js';
import type { Authorizer } from '../auth/authorizer.js';
import type { Actor } from '../auth/principal.js';
import { ControlError } from './errors.js';

/**
 * Throws unless the actor is granted every action of `access`: `unauthorized` for anonymous
 * actors (logging in may help), `forbidden` for the others.
 */
export async function requireAccess(authorizer: Authorizer, actor: Actor, access: Access, message: string): Promise<void> {
  if (await authorizer.allows(actor.principal, access)) return;
  if (actor.principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
  throw new ControlError('forbidden', message);
}

export const systemAccess: Access = { type: 'system', name: 'admin', actions: ['*'] };

/** Only people with a password or session (not robots, not limited tokens) manage credentials. */
export function requireInteractiveUser(actor: Actor, what: string): asserts actor is Actor & { principal: { kind: 'user' } } {
  const principal = actor.principal;
  if (principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
  if (principal.kind !== 'user' || principal.personalToken) {
    throw new ControlError('forbidden', `${what} needs a user logged in with a password, not a robot or a personal access token`);
  }
}

/** A personal access token without the `api` scope manages nothing (it is for registry access). */
export function requireApiScope(actor: Actor): void {
  const principal = actor.principal;
  if (principal.kind === 'user' && principal.personalToken && !principal.personalToken.api) {
    throw new ControlError('forbidden', 'this personal access token lacks the api scope');
  }
}
