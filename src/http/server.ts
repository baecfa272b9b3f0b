import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { Registry } from '../registry/registry.js';
import type { Control } from '../control/control.js';
import { apiPlugin } from './api/plugin.js';
import type { RegistryGuard } from './auth/registry-guard.js';
import { sendError } from './errors.js';
import { lazyChildLogger } from './lazy-logger.js';
import type { Metrics } from './metrics.js';
import { ociRoutes } from './oci/routes.js';
import { tokenRoutes } from './token/routes.js';

export interface HttpServerOptions {
  registry: Registry;
  metrics: Metrics;
  logger: Logger;
  logRequests: boolean;
  /** Resolves when storage and metadata answer; rejects with the reason otherwise. */
  ready: () => Promise<void>;
  /** Identity and access control: the /v2 guard, the token endpoint, the management API. */
  access: {
    guard: RegistryGuard;
    control: Control;
    /** `auth: none`: no token endpoint; the management API acts as an administrator. */
    open: boolean;
    service: string;
    auditPulls: boolean;
    version: string;
  };
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Strict-Transport-Security max-age (seconds) on HTTPS responses (also behind a trusted proxy); 0: none. */
  hstsMaxAge: number;
  /** Proxies whose X-Forwarded-For/-Proto/-Host are believed (addresses, CIDRs). */
  trustedProxies: string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    startedAt: bigint;
  }
}

/** Socket byte counts already attributed to earlier requests of the same connection. */
const counted = new WeakMap<Socket, { read: number; written: number }>();

/** Bytes a socket moved since the last request on it finished. */
function socketDelta(socket: Socket): { bytesIn: number; bytesOut: number } {
  const before = counted.get(socket) ?? { read: 0, written: 0 };
  const now = { read: socket.bytesRead, written: socket.bytesWritten };
  counted.set(socket, now);
  return { bytesIn: now.read - before.read, bytesOut: now.written - before.written };
}

export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    // Uploads can be slow and large: no request timeout, but idle connections do time out.
    requestTimeout: 0,
    keepAliveTimeout: 75_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 1000 },
    trustProxy: options.trustedProxies.length > 0 ? options.trustedProxies : false,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
  }) as unknown as FastifyInstance;

  // Hooks run on every request: callback style (not async) so that they cost no promise each.
  const hsts = options.hstsMaxAge > 0 ? `max-age=${options.hstsMaxAge}` : undefined;
  // Once shutdown begins, responses close their connection, so that keep-alive clients do not
  // hold the shutdown until their idle timeout.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  // Headers of every response are set here rather than in onSend, which a response that a
  // handler writes itself (a blob GET, see oci/blobs.ts) skips.
  app.addHook('onRequest', (request, reply, done) => {
    request.startedAt = process.hrtime.bigint();
    reply.header('x-request-id', request.id);
    if (hsts && request.protocol === 'https') reply.header('strict-transport-security', hsts);
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const seconds = Number(process.hrtime.bigint() - request.startedAt) / 1e9;
    const route = request.routeLabel ?? request.routeOptions.url ?? 'unknown';
    const { bytesIn, bytesOut } = socketDelta(request.raw.socket);
    options.metrics.http.record(request.method, route, reply.statusCode, seconds, bytesIn, bytesOut);
    if (options.logRequests) {
      request.log.info(
        { method: request.method, path: request.url.split('?')[0], route, status: reply.statusCode, bytesIn, bytesOut, ms: Math.round(seconds * 1e5) / 100 },
        'request',
      );
    }
    done();
  });

  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).type('application/json').send({ errors: [{ code: 'NOT_FOUND', message: `no route for ${request.method} ${request.url.split('?')[0]}`, detail: null }] }),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.ready();
      return { status: 'ready' };
    } catch (error) {
      return reply.code(503).send({ status: 'unavailable', reason: (error as Error).message });
    }
  });
  app.get('/metrics', async (request, reply) => {
    try {
      return reply.type(options.metrics.registry.contentType).send(await options.metrics.exposition());
    } catch (error) {
      // A failed scrape is a gap in the series; totals missing a process would look like a reset.
      request.log.warn({ err: error }, 'gathering the node\'s metrics failed');
      return reply.code(503).type('text/plain').send(`metrics unavailable: ${(error as Error).message}\n`);
    }
  });

  const access = options.access;
  app.register(ociRoutes, { registry: options.registry, guard: access.guard, audit: access.control.audit, auditPulls: access.auditPulls, pulls: access.control.pulls, events: access.control.events });
  if (!access.open) app.register(tokenRoutes, { auth: access.control.auth, service: access.service });
  app.register(apiPlugin, { control: access.control, open: access.open, version: access.version });
  return app;
}
