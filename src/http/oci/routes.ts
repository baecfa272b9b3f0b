import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Access, RepositoryAction } from '../../auth/access.js';
import type { Actor } from '../../auth/principal.js';
import { projectOf } from '../../auth/authorizer.js';
import type { AuditLog } from '../../control/audit.js';
import type { EventRecorder } from '../../events/recorder.js';
import type { PullRecorder } from '../../control/pull-stats.js';
import { QuotaExceededError } from '../../metadata/housekeeping-store.js';
import type { ManifestRecord } from '../../metadata/metadata-store.js';
import type { RegistryGuard } from '../auth/registry-guard.js';
import { RegistryError } from '../../registry/errors.js';
import { ImmutableTagDenied } from '../../registry/manifests.js';
import { requireRepositoryName } from '../../registry/names.js';
import type { Registry } from '../../registry/registry.js';
import { sendError } from '../errors.js';
import { deleteBlob, getBlob, headBlob } from './blobs.js';
import type { OciContext, OciHandler } from './context.js';
import { listCatalog, listReferrers, listTags } from './lists.js';
import { deleteManifest, getManifest, headManifest, putManifest } from './manifests.js';
import { cancelUpload, completeUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';

interface Route {
  /** Route label for metrics and logs. */
  label: string;
  /** Matches the path after `/v2/`; group 1 is the repository name, group 2 the parameter. */
  pattern: RegExp;
  methods: Partial<Record<string, OciHandler>>;
  /** The access each method needs on the route's repository (the catalog needs registry:catalog:*). */
  access: Partial<Record<string, RepositoryAction>>;
  /** Audit log action of a successful request, by method. */
  audit?: Partial<Record<string, string>>;
}

// Repository names contain slashes, so routes are matched on the path's tail. The name group
// is greedy and validated afterwards against the spec's grammar.
const routes: Route[] = [
  { label: 'catalog', pattern: /^_catalog$/, methods: { GET: listCatalog }, access: {} },
  // A mount also needs pull on `from`: checked by the handler, which falls back to an upload.
  { label: 'upload', pattern: /^(.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload }, access: { POST: 'push' } },
  {
    label: 'upload_session',
    pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/,
    methods: { GET: uploadStatus, PATCH: patchUpload, PUT: completeUpload, DELETE: cancelUpload },
    access: { GET: 'push', PATCH: 'push', PUT: 'push', DELETE: 'push' },
  },
  {
    label: 'blob',
    pattern: /^(.+)\/blobs\/([^/]+)$/,
    methods: { HEAD: headBlob, GET: getBlob, DELETE: deleteBlob },
    access: { HEAD: 'pull', GET: 'pull', DELETE: 'delete' },
    audit: { DELETE: 'blob.delete' },
  },
  {
    label: 'manifest',
    pattern: /^(.+)\/manifests\/([^/]+)$/,
    methods: { HEAD: headManifest, GET: getManifest, PUT: putManifest, DELETE: deleteManifest },
    access: { HEAD: 'pull', GET: 'pull', PUT: 'push', DELETE: 'delete' },
    audit: { GET: 'manifest.pull', PUT: 'manifest.push', DELETE: 'manifest.delete' },
  },
  { label: 'tags', pattern: /^(.+)\/tags\/list$/, methods: { GET: listTags }, access: { GET: 'pull' } },
  { label: 'referrers', pattern: /^(.+)\/referrers\/([^/]+)$/, methods: { GET: listReferrers }, access: { GET: 'pull' } },
];

const catalogAccess: Access[] = [{ type: 'registry', name: 'catalog', actions: ['*'] }];

export interface OciRoutesOptions {
  registry: Registry;
  /** Authentication and authorization of every request. */
  guard: RegistryGuard;
  audit: AuditLog;
  /** Record manifest pulls in the audit log (one entry per manifest GET). */
  auditPulls: boolean;
  /** Pull statistics (counted in memory, written in batches). */
  pulls?: PullRecorder;
  /** artifact.pulled events (buffered, sampled or aggregated; never awaited by a pull). */
  events?: EventRecorder;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The matched route's label, for metrics. */
    routeLabel?: string;
  }
}

/** The OCI Distribution API under /v2/. */
export async function ociRoutes(app: FastifyInstance, options: OciRoutesOptions) {
  // Blob bodies are streamed from request.raw by the handlers; nothing is parsed or buffered.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.addHook('onSend', (_request, reply, payload, done) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    done(null, payload);
  });

  app.route({
    method: 'GET',
    url: '/v2/',
    exposeHeadRoute: true,
    handler: async (request, reply) => {
      request.routeLabel = 'base';
      try {
        await options.guard.check(request, []);
      } catch (error) {
        return sendError(request, reply, error);
      }
      return reply.type('application/json').send('{}');
    },
  });

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'],
    url: '/v2/*',
    exposeHeadRoute: false,
    handler: (request, reply) => dispatch(request, reply, options),
  });
}

async function dispatch(request: FastifyRequest, reply: FastifyReply, { registry, guard, audit, auditPulls, pulls, events }: OciRoutesOptions) {
  const queryStart = request.url.indexOf('?');
  const path = request.url.slice(4, queryStart === -1 ? undefined : queryStart);
  const query = new URLSearchParams(queryStart === -1 ? '' : request.url.slice(queryStart + 1));
  let caller: { actor: Actor; name: string } | undefined;
  try {
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      request.routeLabel = route.label;
      const handler = route.methods[request.method];
      if (!handler) {
        reply.header('allow', Object.keys(route.methods).join(', '));
        throw new RegistryError('METHOD_UNKNOWN', `${request.method} is not allowed here; allowed: ${Object.keys(route.methods).join(', ')}`);
      }
      const name = match[1] === undefined ? '' : requireRepositoryName(match[1]);
      const action = route.access[request.method];
      const auth = await guard.check(request, action ? [{ type: 'repository', name, actions: [action] }] : catalogAccess);
      if (action === 'push') await guard.beforePush(auth, name);
      caller = { actor: auth.actor, name };
      const param = match[2] ?? '';
      const ctx: OciContext = { request, reply, registry, name, param, query, auth };
      const result = await handler(ctx);
      const event = route.audit?.[request.method];
      if (ctx.pulled && reply.statusCode === 200) recordPull(ctx.pulled, ctx, { pulls, events, audit: auditPulls ? audit : undefined });
      else if (event && event !== 'manifest.pull' && reply.statusCode < 300) {
        const digest = reply.getHeader('docker-content-digest');
        const target = param.includes(':') ? `${name}@${param}` : `${name}:${param}`;
        const tagDeleted = event === 'manifest.delete' && !param.includes(':');
        audit.record(auth.actor, {
          action: tagDeleted ? 'tag.delete' : event,
          result: 'success',
          target,
          detail: typeof digest === 'string' && !param.includes(':') ? { digest } : null,
        });
      }
      return result;
    }
    request.routeLabel = 'unknown';
    throw new RegistryError('NOT_FOUND', 'no such endpoint in the registry API', { path: path.slice(0, 300) });
  } catch (error) {
    if (error instanceof QuotaExceededError && caller) {
      const { kind, used, limit, adding } = error;
      audit.record(caller.actor, { action: 'quota.exceeded', result: 'denied', target: caller.name, detail: { kind, used, limit, adding, method: request.method } });
      // Not awaited: the refusal does not wait for its event (emit never throws).
      void events?.emit({ type: 'quota.exceeded', actor: caller.actor, project: error.project, repository: caller.name, detail: { kind, used, limit, adding } });
    }
    if (error instanceof ImmutableTagDenied && caller) {
      const { rule, digest, tag } = error.refusal;
      audit.record(caller.actor, { action: 'tag.immutable', result: 'denied', target: `${caller.name}:${tag}`, detail: { rule, digest, method: request.method } });
    }
    // Unread request bodies would otherwise stall the connection.
    if (!request.raw.readableEnded) request.raw.resume();
    return sendError(request, reply, error);
  }
}

/**
 * A manifest pull, in the pull statistics, the artifact.pulled events and the audit log (each
 * buffered, never awaited), from the record that was served rather than the answer's headers.
 */
function recordPull(manifest: ManifestRecord, { name, param, auth }: OciContext, records: { pulls?: PullRecorder; events?: EventRecorder; audit?: AuditLog }): void {
  const tag = param.includes(':') ? null : param;
  records.pulls?.record(name, manifest.digest, tag);
  records.events?.pulled(auth.actor, name, { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size }, tag);
  records.audit?.record(auth.actor, {
    action: 'manifest.pull',
    result: 'success',
    project: projectOf(name),
    target: tag === null ? `${name}@${param}` : `${name}:${param}`,
    detail: tag === null ? null : { digest: manifest.digest },
  });
}
