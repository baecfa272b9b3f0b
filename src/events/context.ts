import { hostname } from 'node:os';
import type { Actor } from '../auth/principal.js';
import type { WriteContext } from '../metadata/events-store.js';

/** This process's name in tag history and events: the configured `node.name`, or `<host>:<pid>`. */
export function nodeName(configured?: string): string {
  return configured ?? `${hostname()}:${process.pid}`;
}

/** Who writes, from the request's actor, and where. */
export function writeContextOf(actor: Actor, node: string): WriteContext {
  const principal = actor.principal;
  return {
    actor: principal.kind === 'anonymous' ? null : principal.name,
    actorKind: principal.kind,
    address: actor.address,
    node,
  };
}
