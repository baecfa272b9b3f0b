import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../registry/errors.js';
import { requireRepositoryName } from '../../registry/names.js';
import type { Registry } from '../../registry/registry.js';
import { sendError } from '../errors.js';
import { deleteBlob, getBlob, headBlob } from './blobs.js';
import type { OciHandler } from './context.js';
import { listCatalog, listReferrers, listTags } from './lists.js';
import { deleteManifest, getManifest, headManifest, putManifest } from './manifests.js';
import { cancelUpload, completeUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';

interface Route {
  /** Route label for metrics and logs. */
  label: string;
  /** Matches the path after `/v2/`; group 1 is the repository name, group 2 the parameter. */
  pattern: RegExp;
  methods: Partial<Record<string, OciHandler>>;
}

// Repository names contain slashes, so routes are matched on the path's tail. The name group
// is greedy and validated afterwards against the spec's grammar.
const routes: Route[] = [
  { label: 'catalog', pattern: /^_catalog$/, methods: { GET: listCatalog } },
  { label: 'upload', pattern: /^(.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload } },
  {
    label: 'upload_session',
    pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/,
    methods: { GET: uploadStatus, PATCH: patchUpload, PUT: completeUpload, DELETE: cancelUpload },
  },
  { label: 'blob', pattern: /^(.+)\/blobs\/([^/]+)$/, methods: { HEAD: headBlob, GET: getBlob, DELETE: deleteBlob } },
  {
    label: 'manifest',
    pattern: /^(.+)\/manifests\/([^/]+)$/,
    methods: { HEAD: headManifest, GET: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  { label: 'tags', pattern: /^(.+)\/tags\/list$/, methods: { GET: listTags } },
  { label: 'referrers', pattern: /^(.+)\/referrers\/([^/]+)$/, methods: { GET: listReferrers } },
];

declare module 'fastify' {
  interface FastifyRequest {
    /** The matched route's label, for metrics. */
    routeLabel?: string;
  }
}

/** The OCI Distribution API under /v2/. */
export async function ociRoutes(app: FastifyInstance, { registry }: { registry: Registry }) {
  // Blob bodies are streamed from request.raw by the handlers; nothing is parsed or buffered.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.addHook('onSend', async (_request, reply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
  });

  app.route({
    method: 'GET',
    url: '/v2/',
    exposeHeadRoute: true,
    handler: async (request, reply) => {
      request.routeLabel = 'base';
      return reply.type('application/json').send('{}');
    },
  });

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'],
    url: '/v2/*',
    exposeHeadRoute: false,
    handler: (request, reply) => dispatch(request, reply, registry),
  });
}

async function dispatch(request: FastifyRequest, reply: FastifyReply, registry: Registry) {
  const queryStart = request.url.indexOf('?');
  const path = request.url.slice(4, queryStart === -1 ? undefined : queryStart);
  const query = new URLSearchParams(queryStart === -1 ? '' : request.url.slice(queryStart + 1));
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
      return await handler({ request, reply, registry, name, param: match[2] ?? '', query });
    }
    request.routeLabel = 'unknown';
    throw new RegistryError('NOT_FOUND', 'no such endpoint in the registry API', { path: path.slice(0, 300) });
  } catch (error) {
    // Unread request bodies would otherwise stall the connection.
    if (!request.raw.readableEnded) request.raw.resume();
    return sendError(request, reply, error);
  }
}
