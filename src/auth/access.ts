/**
 * The access-record model of the Docker token specification: a resource (type and name) and the
 * actions wanted on it or granted. Used for token scopes, the `access` claim of tokens, what each
 * /v2 route needs, and the authorizer's answers.
 */
export interface Access {
  /** `repository`, `registry`, or Stowage's own `project` and `system`. */
  type: string;
  name: string;
  actions: string[];
}

export const repositoryActions = ['pull', 'push', 'delete'] as const;
export type RepositoryAction = (typeof repositoryActions)[number];

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

const typePattern = /^[a-z0-9]+(?:\([a-z0-9]+\))?$/;
const actionPattern = /^[a-z*]*$/;
const namePattern = /^[A-Za-z0-9._\-/:]+$/;

/**
 * Parses a scope string: resource scopes separated by spaces, each `type:name:action[,action]`.
 * The name may hold one `:` (a registry host's port), so the type is what precedes the first
 * colon and the actions what follows the last. A resource class (`repository(plugin)`) is
 * ignored, as the spec now says.
 */
export function parseScope(text: string): Access[] {
  const result: Access[] = [];
  for (const part of text.split(' ')) {
    if (part === '') continue;
    if (part.length > 600) throw new ScopeError('a scope is longer than 600 characters');
    const first = part.indexOf(':');
    const last = part.lastIndexOf(':');
    if (first <= 0 || last === first) throw new ScopeError(`invalid scope "${part.slice(0, 200)}": expected type:name:actions`);
    const type = part.slice(0, first);
    const name = part.slice(first + 1, last);
    const actions = part.slice(last + 1).split(',');
    if (!typePattern.test(type)) throw new ScopeError(`invalid resource type in scope "${part.slice(0, 200)}"`);
    if (name === '' || !namePattern.test(name)) throw new ScopeError(`invalid resource name in scope "${part.slice(0, 200)}"`);
    if (!actions.every((a) => actionPattern.test(a))) throw new ScopeError(`invalid actions in scope "${part.slice(0, 200)}"`);
    result.push({ type: type.replace(/\(.*\)$/, ''), name, actions: actions.filter((a) => a !== '') });
  }
  return mergeAccess(result);
}

/** Merges entries for the same resource, keeping each action once, in a stable order. */
export function mergeAccess(entries: Access[]): Access[] {
  const byResource = new Map<string, Access>();
  for (const entry of entries) {
    const key = `${entry.type}:${entry.name}`;
    const existing = byResource.get(key);
    if (existing) existing.actions = [...new Set([...existing.actions, ...entry.actions])];
    else byResource.set(key, { type: entry.type, name: entry.name, actions: [...new Set(entry.actions)] });
  }
  return [...byResource.values()];
}

/** The scope string of access entries (space-separated `type:name:actions`). */
export function formatScope(entries: Access[]): string {
  return entries
    .filter((e) => e.actions.length > 0)
    .map((e) => `${e.type}:${e.name}:${e.actions.join(',')}`)
    .join(' ');
}

/** Whether `granted` (e.g. a token's access claim) allows every action of `needed`. */
export function covers(granted: readonly Access[], needed: Access): boolean {
  const entry = granted.find((g) => g.type === needed.type && g.name === needed.name);
  if (!entry) return false;
  return entry.actions.includes('*') || needed.actions.every((action) => entry.actions.includes(action));
}

// ---------------------------------------------------------------------------------------------
// Permissions of robot accounts and personal access tokens
// ---------------------------------------------------------------------------------------------

/**
 * One permission of a robot account or a personal access token:
 * `repository:<pattern>:<actions>`, where the pattern is a repository name in which `*` matches
 * within one path component and `**` across components (`team/**`: everything in project team).
 */
export interface Permission {
  /** The permission as written. */
  text: string;
  pattern: string;
  actions: RepositoryAction[];
  matches(repository: string): boolean;
}

const patternSyntax = /^[a-z0-9*]+(?:[._\-/][a-z0-9*]*)*$/;

export function parsePermission(text: string): Permission {
  const match = /^repository:([^:]+):([a-z*,]+)$/.exec(text);
  if (!match) throw new ScopeError(`invalid permission "${text.slice(0, 200)}": expected repository:<pattern>:<actions>, e.g. repository:team/**:pull,push`);
  const pattern = match[1]!;
  if (pattern.length > 255 || !patternSyntax.test(pattern) || pattern.includes('***')) {
    throw new ScopeError(`invalid repository pattern "${pattern.slice(0, 200)}": a repository name where * matches within a component and ** across them`);
  }
  const actions = new Set<RepositoryAction>();
  for (const action of match[2]!.split(',')) {
    if (action === '*') repositoryActions.forEach((a) => actions.add(a));
    else if ((repositoryActions as readonly string[]).includes(action)) actions.add(action as RepositoryAction);
    else throw new ScopeError(`unknown action "${action}" in permission "${text.slice(0, 200)}": expected pull, push, delete or *`);
  }
  const regex = new RegExp(
    `^${pattern
      .split(/(\*\*|\*)/)
      .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.\\+?^${}()|[\]-]/g, '\\$&')))
      .join('')}$`,
  );
  return { text, pattern, actions: repositoryActions.filter((a) => actions.has(a)), matches: (repository) => regex.test(repository) };
}

/** The project a pattern is confined to (its first component), or null when it can span projects. */
export function patternProject(pattern: string): string | null {
  const first = pattern.split('/', 1)[0]!;
  return first.includes('*') ? null : first;
}

/** The actions that a list of permissions grants on a repository. */
export function permittedActions(permissions: readonly Permission[], repository: string): Set<RepositoryAction> {
  const actions = new Set<RepositoryAction>();
  for (const permission of permissions) {
    if (permission.matches(repository)) permission.actions.forEach((a) => actions.add(a));
  }
  return actions;
}
