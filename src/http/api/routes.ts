import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Actor } from '../../auth/principal.js';
import { AuthenticationError } from '../../auth/authenticators.js';
import { TooManyFailuresError } from '../../auth/throttle.js';
import type { Control } from '../../control/control.js';
import { auditFilterInput } from '../../control/audit-service.js';
import { lifecycleInput, rollbackInput, tagRuleInput } from '../../control/tag-history.js';
import { garbagePreviewInput, garbageRunInput, garbageRunsInput } from '../../control/garbage.js';
import { quotaInput } from '../../control/quotas.js';
import { retentionInput } from '../../control/retention-policy.js';
import { ControlError } from '../../control/errors.js';
import { requireAccess, systemAccess } from '../../control/guard.js';
import {
  memberInput,
  newProjectInput,
  newRobotInput,
  newTokenInput,
  newUserInput,
  passwordChangeInput,
  projectChangesInput,
  userChangesInput,
} from '../../control/validation.js';
import type { AuditFilter, OffsetPage, Paged } from '../../metadata/control-store.js';
import { clearSessionCookie, readCookie, sessionCookie, setSessionCookie } from './plugin.js';
import { webhookRoutes } from './webhook-routes.js';

export interface ApiContext {
  actor: Actor;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  request: FastifyRequest;
  reply: FastifyReply;
  control: Control;
}

export interface ApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Below /api/v1, with `{param}`s; `{repository}` may contain slashes. */
  path: string;
  tag: string;
  summary: string;
  description?: string;
  query?: z.ZodObject;
  /** The request body's schema (the services validate it; here for the OpenAPI document). */
  body?: z.ZodType;
  /** Success status: 200 by default, 204 when the handler returns nothing. */
  status?: number;
  response: string;
  handle(ctx: ApiContext): Promise<unknown>;
}

const pageQuery = {
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(500).default(50),
};
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

function page(query: Record<string, unknown>): OffsetPage {
  const size = query.page_size as number;
  return { offset: ((query.page as number) - 1) * size, limit: size };
}

function paged<T>(query: Record<string, unknown>, result: Paged<T>) {
  return { items: result.items, total: result.total, page: query.page, page_size: query.page_size };
}

const loginInput = z.object({ username: z.string().min(1).max(300), password: z.string().min(1).max(4096) }).strict();

export const apiRoutes: ApiRoute[] = [
  // ---------------------------------------------------------------------------------------------
  // Session (web UI)
  {
    method: 'POST',
    path: '/session',
    tag: 'session',
    summary: 'Log in: sets an HTTP-only, SameSite=Strict session cookie; returns the CSRF token to send as X-CSRF-Token',
    body: loginInput,
    response: '{ user, csrfToken, expiresAt }',
    async handle({ control, body, request, reply, actor }) {
      const parsed = loginInput.safeParse(body ?? {});
      if (!parsed.success) throw ControlError.fromZod(parsed.error);
      let principal;
      try {
        principal = await control.auth.login(parsed.data, { address: actor.address, method: 'session' });
      } catch (error) {
        if (error instanceof TooManyFailuresError) throw new ControlError('too-many-requests', error.message, [], error.retryAfterSeconds);
        if (error instanceof AuthenticationError) throw new ControlError('unauthorized', error.message);
        throw error;
      }
      if (principal.kind !== 'user' || principal.personalToken) throw new ControlError('forbidden', 'web sessions are for users with a password');
      const session = await control.auth.createSession(principal, actor.address);
      setSessionCookie(request, reply, session.secret, Math.floor(control.auth.options.sessionTtlMs / 1000));
      const user = await control.users.get({ principal, address: actor.address }, principal.name);
      return { user, csrfToken: session.csrfToken, expiresAt: session.expiresAt };
    },
  },
  {
    method: 'GET',
    path: '/session',
    tag: 'session',
    summary: 'Who is logged in (session cookie), with the CSRF token',
    response: '{ user, csrfToken }',
    async handle({ control, request, reply }) {
      const secret = readCookie(request, sessionCookie);
      const session = secret ? await control.auth.session(secret) : null;
      if (!session || session.principal.kind !== 'user') {
        if (secret) clearSessionCookie(reply);
        throw new ControlError('unauthorized', 'not logged in');
      }
      const user = await control.users.get({ principal: session.principal, address: null }, session.principal.name);
      return { user, csrfToken: session.csrfToken };
    },
  },
  {
    method: 'DELETE',
    path: '/session',
    tag: 'session',
    summary: 'Log out (needs X-CSRF-Token)',
    response: 'no content',
    async handle({ control, request, reply }) {
      const secret = readCookie(request, sessionCookie);
      if (secret) {
        const session = await control.auth.session(secret);
        const given = request.headers['x-csrf-token'];
        if (session && given !== session.csrfToken) throw new ControlError('forbidden', 'missing or wrong X-CSRF-Token header');
        await control.auth.endSession(secret);
      }
      clearSessionCookie(reply);
    },
  },

  // ---------------------------------------------------------------------------------------------
  // Users
  {
    method: 'GET',
    path: '/users',
    tag: 'users',
    summary: 'List users (system admins)',
    query: z.object({ query: z.string().max(100).optional(), disabled: flag.optional(), ...pageQuery }).strict(),
    response: '{ items: User[], total, page, page_size }',
    async handle({ control, actor, query }) {
      return paged(query, await control.users.list(actor, { query: query.query as string | undefined, disabled: query.disabled as boolean | undefined }, page(query)));
    },
  },
  {
    method: 'POST',
    path: '/users',
    tag: 'users',
    summary: 'Create a user (system admins); without a password, one is generated and returned once',
    body: newUserInput,
    status: 201,
    response: '{ user, password? }',
    async handle({ control, actor, body }) {
      const { user, generatedPassword } = await control.users.create(actor, body);
      return generatedPassword ? { user, password: generatedPassword } : { user };
    },
  },
  {
    method: 'GET',
    path: '/users/{name}',
    tag: 'users',
    summary: 'A user (system admins, or the user)',
    response: 'User',
    handle: ({ control, actor, params }) => control.users.get(actor, params.name!),
  },
  {
    method: 'PATCH',
    path: '/users/{name}',
    tag: 'users',
    summary: 'Disable or enable, grant or remove admin rights, change e-mail (system admins)',
    body: userChangesInput,
    response: 'User',
    handle: ({ control, actor, params, body }) => control.users.update(actor, params.name!, body),
  },
  {
    method: 'DELETE',
    path: '/users/{name}',
    tag: 'users',
    summary: 'Delete a user (system admins)',
    response: 'no content',
    handle: ({ control, actor, params }) => control.users.delete(actor, params.name!),
  },
  {
    method: 'PUT',
    path: '/users/{name}/password',
    tag: 'users',
    summary: "Change a password: one's own (with currentPassword) or, for admins, anyone's; revokes the user's tokens and sessions",
    body: passwordChangeInput,
    response: 'no content',
    handle: ({ control, actor, params, body }) => control.users.setPassword(actor, params.name!, body),
  },

  // ---------------------------------------------------------------------------------------------
  // Projects and members
  {
    method: 'GET',
    path: '/projects',
    tag: 'projects',
    summary: 'Projects the caller can see (public ones and their own; all for admins)',
    query: z.object({ query: z.string().max(100).optional(), ...pageQuery }).strict(),
    response: '{ items: Project[], total, page, page_size }',
    async handle({ control, actor, query }) {
      return paged(query, await control.projects.list(actor, { query: query.query as string | undefined }, page(query)));
    },
  },
  {
    method: 'POST',
    path: '/projects',
    tag: 'projects',
    summary: 'Create a project (by the project-creation setting); the creator becomes its owner',
    body: newProjectInput,
    status: 201,
    response: 'Project',
    handle: ({ control, actor, body }) => control.projects.create(actor, body),
  },
  {
    method: 'GET',
    path: '/projects/{name}',
    tag: 'projects',
    summary: 'A project',
    response: 'Project',
    handle: ({ control, actor, params }) => control.projects.get(actor, params.name!),
  },
  {
    method: 'PATCH',
    path: '/projects/{name}',
    tag: 'projects',
    summary: 'Change the visibility (owners, admins)',
    body: projectChangesInput,
    response: 'Project',
    handle: ({ control, actor, params, body }) => control.projects.update(actor, params.name!, body),
  },
  {
    method: 'DELETE',
    path: '/projects/{name}',
    tag: 'projects',
    summary: 'Delete a project: only when empty, or with force=true with its repositories (owners, admins)',
    query: z.object({ force: flag.optional() }).strict(),
    response: 'no content',
    handle: ({ control, actor, params, query }) => control.projects.delete(actor, params.name!, query.force === true),
  },
  {
    method: 'GET',
    path: '/projects/{name}/members',
    tag: 'projects',
    summary: 'Members and their roles (members, admins)',
    response: '{ items: Member[] }',
    async handle({ control, actor, params }) {
      return { items: await control.projects.members(actor, params.name!) };
    },
  },
  {
    method: 'PUT',
    path: '/projects/{name}/members/{user}',
    tag: 'projects',
    summary: "Add a member or change a role: owner, maintainer, developer or reader (owners, admins); revokes the member's tokens",
    body: memberInput,
    response: 'no content',
    handle: ({ control, actor, params, body }) => control.projects.setMember(actor, params.name!, params.user!, body),
  },
  {
    method: 'DELETE',
    path: '/projects/{name}/members/{user}',
    tag: 'projects',
    summary: 'Remove a member (owners, admins)',
    response: 'no content',
    handle: ({ control, actor, params }) => control.projects.removeMember(actor, params.name!, params.user!),
  },

  {
    method: 'GET',
    path: '/projects/{name}/lifecycle',
    tag: 'projects',
    summary: "A project's versions and lifecycle settings: the tag history window in force (ms) and whether it is the project's own",
    response: '{ project, historyWindowMs, custom }',
    handle: ({ control, actor, params }) => control.tagHistory.settings(actor, params.name!),
  },
  {
    method: 'PUT',
    path: '/projects/{name}/lifecycle',
    tag: 'projects',
    summary: 'Set the tag history window ({ historyWindow: "30d" }, 1h to 3650d; null for the 14-day default); owners',
    body: lifecycleInput,
    status: 200,
    response: '{ project, historyWindowMs, custom }',
    handle: ({ control, actor, params, body }) => control.tagHistory.configure(actor, params.name!, body),
  },

  {
    method: 'GET',
    path: '/projects/{name}/immutable-tags',
    tag: 'projects',
    summary: "A project's immutable tag rules: once a matching tag exists, moving it to another digest or deleting it is refused (403 DENIED)",
    response: '{ items: { id, repository, tag, createdBy, createdAt }[] }',
    handle: ({ control, actor, params }) => control.tagHistory.rules(actor, params.name!),
  },
  {
    method: 'POST',
    path: '/projects/{name}/immutable-tags',
    tag: 'projects',
    summary: 'Add an immutable tag rule ({ tag: "v*", repository?: "<project>/*" }; globs with * and ?); owners',
    body: tagRuleInput,
    status: 201,
    response: '{ id, repository, tag, createdBy, createdAt }',
    handle: ({ control, actor, params, body }) => control.tagHistory.addRule(actor, params.name!, body),
  },
  {
    method: 'DELETE',
    path: '/projects/{name}/immutable-tags/{id}',
    tag: 'projects',
    summary: 'Remove an immutable tag rule; owners',
    response: 'no content',
    handle: ({ control, actor, params }) => control.tagHistory.deleteRule(actor, params.name!, params.id!),
  },

  {
    method: 'GET',
    path: '/projects/{name}/quota',
    tag: 'projects',
    summary: "A project's quota (bytes, repositories; null: no limit) and usage (unique blobs, counted once however many repositories hold them)",
    response: '{ project, quota: { bytes, repositories }, usage: { bytes, blobs, repositories } }',
    handle: ({ control, actor, params }) => control.quotas.show(actor, params.name!),
  },
  {
    method: 'PUT',
    path: '/projects/{name}/quota',
    tag: 'projects',
    summary: 'Set the quota ({ bytes: "10GiB" | number | null, repositories: number | null }; omitted: no limit); owners; pushes beyond it get 403 DENIED',
    body: quotaInput,
    response: '{ project, quota, usage }',
    handle: ({ control, actor, params, body }) => control.quotas.set(actor, params.name!, body),
  },
  {
    method: 'GET',
    path: '/projects/{name}/usage',
    tag: 'projects',
    summary: "A project's usage with its quota (same as GET .../quota)",
    response: '{ project, quota, usage }',
    handle: ({ control, actor, params }) => control.quotas.show(actor, params.name!),
  },
  {
    method: 'GET',
    path: '/projects/{name}/retention',
    tag: 'projects',
    summary: "A project's retention policy (null: none), the schedule in force, the next and last scheduled run",
    response: '{ project, policy, schedule, nextRunAt, lastRunAt }',
    handle: ({ control, actor, params }) => control.retention.show(actor, params.name!),
  },
  {
    method: 'PUT',
    path: '/projects/{name}/retention',
    tag: 'projects',
    summary:
      'Set the retention policy (owners): { keepMostRecent, keepTags: ["v*"], keepPulledWithin: "30d", keepPushedWithin: "7d", untaggedAfter: "14d", untaggedInHistoryWindow, untaggedReferrers, schedule: "0 3 * * *" }; keep rules combine with or',
    body: retentionInput,
    status: 200,
    response: '{ project, policy, schedule, nextRunAt, lastRunAt }',
    handle: ({ control, actor, params, body }) => control.retention.set(actor, params.name!, body),
  },
  {
    method: 'DELETE',
    path: '/projects/{name}/retention',
    tag: 'projects',
    summary: 'Remove the retention policy (owners)',
    response: 'no content',
    handle: ({ control, actor, params }) => control.retention.remove(actor, params.name!),
  },
  {
    method: 'POST',
    path: '/projects/{name}/retention/run',
    tag: 'projects',
    summary: 'Run the retention policy now (owners); ?dryRun=true lists what would go and why, removing nothing',
    query: z.object({ dryRun: flag.optional() }).strict(),
    status: 200,
    response: '{ project, dryRun, startedAt, finishedAt, repositories, removed: Decision[], kept: Decision[], skipped: Decision[] } with Decision { repository, digest, tags, pushedAt, lastPulledAt, reason }',
    handle: ({ control, actor, params, query }) => control.retention.run(actor, params.name!, { dryRun: (query.dryRun as boolean | undefined) ?? false }),
  },
  {
    method: 'GET',
    path: '/usage',
    tag: 'projects',
    summary: 'Usage and quota of every project (admins)',
    response: '{ items: { project, quota, usage }[] }',
    handle: ({ control, actor }) => control.quotas.all(actor),
  },

  // ---------------------------------------------------------------------------------------------
  // Robot accounts
  {
    method: 'GET',
    path: '/robots',
    tag: 'robots',
    summary: "Robot accounts: a project's (owners), system robots with system=true, or all (admins)",
    query: z.object({ project: z.string().max(64).optional(), system: flag.optional(), ...pageQuery }).strict(),
    response: '{ items: Robot[], total, page, page_size }',
    async handle({ control, actor, query }) {
      const filter = query.system === true ? { project: null } : { project: query.project as string | undefined };
      return paged(query, await control.robots.list(actor, filter, page(query)));
    },
  },
  {
    method: 'POST',
    path: '/robots',
    tag: 'robots',
    summary: 'Create a robot account; the secret is returned this once',
    body: newRobotInput,
    status: 201,
    response: '{ robot, secret }',
    handle: ({ control, actor, body }) => control.robots.create(actor, body),
  },
  {
    method: 'DELETE',
    path: '/robots/{id}',
    tag: 'robots',
    summary: 'Delete a robot account (its tokens stop working)',
    response: 'no content',
    handle: ({ control, actor, params }) => control.robots.delete(actor, params.id!),
  },

  // ---------------------------------------------------------------------------------------------
  // Personal access tokens
  {
    method: 'GET',
    path: '/tokens',
    tag: 'tokens',
    summary: "The caller's personal access tokens (admins: ?user=)",
    query: z.object({ user: z.string().max(64).optional() }).strict(),
    response: '{ items: Token[] }',
    async handle({ control, actor, query }) {
      return { items: await control.tokens.list(actor, query.user as string | undefined) };
    },
  },
  {
    method: 'POST',
    path: '/tokens',
    tag: 'tokens',
    summary: 'Create a personal access token (scopes: api and/or repository:<pattern>:<actions>); the secret is returned this once',
    body: newTokenInput,
    status: 201,
    response: '{ token, secret }',
    handle: ({ control, actor, body }) => control.tokens.create(actor, body),
  },
  {
    method: 'DELETE',
    path: '/tokens/{id}',
    tag: 'tokens',
    summary: 'Revoke a personal access token',
    response: 'no content',
    handle: ({ control, actor, params }) => control.tokens.revoke(actor, params.id!),
  },

  // ---------------------------------------------------------------------------------------------
  // Repositories and tags
  {
    method: 'GET',
    path: '/repositories',
    tag: 'repositories',
    summary: 'Repositories the caller may pull, optionally in a project and containing query',
    query: z.object({ query: z.string().max(255).optional(), project: z.string().max(64).optional(), ...pageQuery }).strict(),
    response: '{ items: Repository[], total, page, page_size }',
    async handle({ control, actor, query }) {
      return paged(query, await control.repositories.list(actor, { query: query.query as string | undefined, project: query.project as string | undefined }, page(query)));
    },
  },
  {
    method: 'GET',
    path: '/repositories/{repository}/-/tags',
    tag: 'repositories',
    summary: 'Tags with digest, media type, size, push time and pull statistics (pulls and last pull through the tag; of its manifest by any reference)',
    query: z.object(pageQuery).strict(),
    response: '{ items: { name, digest, mediaType, size, pushedAt, pulls, lastPulledAt, manifestPulls, manifestLastPulledAt }[], total, page, page_size }',
    async handle({ control, actor, params, query }) {
      const tags = await control.repositories.tags(actor, params.repository!, page(query));
      return paged(query, { ...tags, items: await control.pulls.annotate(params.repository!, tags.items) });
    },
  },
  {
    method: 'DELETE',
    path: '/repositories/{repository}/-/tags/{tag}',
    tag: 'repositories',
    summary: 'Delete a tag (the manifest stays)',
    response: 'no content',
    handle: ({ control, actor, params }) => control.repositories.deleteTag(actor, params.repository!, params.tag!),
  },
  {
    method: 'GET',
    path: '/repositories/{repository}/-/tags/{tag}/history',
    tag: 'repositories',
    summary: "A tag's moves, newest first (a deletion is a move to null), the current digest and the history window's start",
    response: '{ repository, tag, current, windowStart, items: { previousDigest, digest, at, inWindow, by: { actor, actorKind, address, node } | null }[] }',
    handle: ({ control, actor, params }) => control.tagHistory.history(actor, params.repository!, params.tag!),
  },
  {
    method: 'POST',
    path: '/repositories/{repository}/-/tags/{tag}/rollback',
    tag: 'repositories',
    summary: 'Point a tag back at a digest it named inside the history window: { to: digest } or { steps: N } (default 1 move back); needs push; recorded as a move',
    body: rollbackInput,
    response: '{ repository, tag, previousDigest, digest, moved }',
    handle: ({ control, actor, params, body }) => control.tagHistory.rollback(actor, params.repository!, params.tag!, body),
  },
  {
    method: 'GET',
    path: '/repositories/{repository}/-/diff',
    tag: 'repositories',
    summary: 'Compare two images (tags or digests): layers shared, removed and added, config changes (env, labels, entrypoint, cmd, user, working dir), size change',
    query: z.object({ from: z.string().min(1).max(200), to: z.string().min(1).max(200) }).strict(),
    response: '{ repository, from, to, identical, layers: { shared, removed, added }, config, sizeChange }',
    handle: ({ control, actor, params, query }) => control.tagHistory.diff(actor, params.repository!, query.from as string, query.to as string),
  },
  {
    method: 'GET',
    path: '/repositories/{repository}/-/manifests',
    tag: 'repositories',
    summary: 'Manifests as retention sees them, newest first: tags, push time, index membership, subject, pulls and last pull (also untagged ones); needs pull',
    response: '{ repository, items: { digest, mediaType, pushedAt, tags, subject, inIndex, pulls, lastPulledAt }[] }',
    handle: ({ control, actor, params }) => control.retention.manifests(actor, params.repository!),
  },
  {
    method: 'GET',
    path: '/repositories/{repository}',
    tag: 'repositories',
    summary: 'A repository (name contains slashes, unencoded: /repositories/team/app)',
    response: 'Repository',
    handle: ({ control, actor, params }) => control.repositories.get(actor, params.repository!),
  },
  {
    method: 'DELETE',
    path: '/repositories/{repository}',
    tag: 'repositories',
    summary: 'Delete a repository with its manifests and tags',
    response: 'no content',
    handle: ({ control, actor, params }) => control.repositories.delete(actor, params.repository!),
  },

  // ---------------------------------------------------------------------------------------------
  // Garbage collection
  {
    method: 'GET',
    path: '/gc/preview',
    tag: 'gc',
    summary: 'Dry run of garbage collection (admins): blobs no manifest references, not pushed, mounted or linked within the grace period (?grace=24h&project=P)',
    query: garbagePreviewInput,
    response: '{ graceMs, project, before, count, bytes, blobs: { digest, size, seenAt, repositories }[], truncated }',
    handle: ({ control, actor, query }) => control.garbage.preview(actor, query),
  },
  {
    method: 'POST',
    path: '/gc',
    tag: 'gc',
    summary: 'Start a garbage collection run in the background (admins): { grace?: "24h", project?: "P" }; 409 while another run (on any node) holds the lease',
    body: garbageRunInput,
    status: 202,
    response: 'the run: { id, status, phase, graceMs, project, actor, startedAt, updatedAt, finishedAt, blobsExamined, bytesExamined, blobsMarked, blobsFreed, bytesFreed, uploadsRemoved, error }',
    handle: ({ control, actor, body }) => control.garbage.start(actor, body),
  },
  {
    method: 'GET',
    path: '/gc/runs',
    tag: 'gc',
    summary: 'Garbage collection runs, newest first (admins); ?before=<id> pages',
    query: garbageRunsInput,
    response: '{ items: run[] }',
    handle: ({ control, actor, query }) => control.garbage.runs(actor, query),
  },
  {
    method: 'GET',
    path: '/gc/runs/{id}',
    tag: 'gc',
    summary: 'One garbage collection run with its phase and progress (admins)',
    response: 'the run',
    handle: ({ control, actor, params }) => control.garbage.run(actor, params.id!),
  },

  // Webhooks (webhook-routes.ts)
  ...webhookRoutes,

  // ---------------------------------------------------------------------------------------------
  // Audit log and signing keys
  {
    method: 'GET',
    path: '/audit',
    tag: 'audit',
    summary: 'Audit log entries, newest first, by actor, project, action, result and time range (admins; owners with project=)',
    query: auditFilterInput.extend(pageQuery).strict(),
    response: '{ items: AuditEntry[], total, page, page_size }',
    async handle({ control, actor, query }) {
      const { page: _page, page_size: _size, ...filter } = query;
      return paged(query, await control.auditSearch.search(actor, filter as AuditFilter, page(query)));
    },
  },
  {
    method: 'GET',
    path: '/keys',
    tag: 'keys',
    summary: 'Token signing keys that still verify (public parts; admins)',
    response: '{ items: Key[] }',
    async handle({ control, actor }) {
      await requireAccess(control.auth.authorizer, actor, systemAccess, 'only system administrators see the signing keys');
      return { items: await control.auth.keyring.list() };
    },
  },
  {
    method: 'POST',
    path: '/keys/rotate',
    tag: 'keys',
    summary: 'Sign tokens with a new key from now on; the old key verifies until its tokens expire (admins)',
    response: '{ kid }',
    async handle({ control, actor }) {
      await requireAccess(control.auth.authorizer, actor, systemAccess, 'only system administrators rotate the signing keys');
      const kid = await control.auth.keyring.rotate();
      control.audit.record(actor, { action: 'key.rotate', result: 'success', target: kid, project: null });
      return { kid };
    },
  },
];
