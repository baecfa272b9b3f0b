import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { OtlpExporter } from './exporter.js';
import { parseTraceparent, SpanKind, Tracer, type Span } from './tracer.js';

declare module 'fastify' {
  interface FastifyRequest {
    traceSpan?: Span;
  }
}

export interface Tracing {
  tracer: Tracer;
  /** Sends what is buffered (at shutdown). */
  flush(): Promise<void>;
}

/** Tracing when `tracing.otlpEndpoint` is set; undefined (nothing instrumented) otherwise. */
export function createTracing(settings: { otlpEndpoint?: string; serviceName: string }, logger: Pick<Logger, 'warn'>): Tracing | undefined {
  if (!settings.otlpEndpoint) return undefined;
  const exporter = new OtlpExporter(settings.otlpEndpoint, settings.serviceName, logger);
  return { tracer: new Tracer(exporter), flush: () => exporter.flush() };
}

/**
 * A server span per HTTP request (child of the caller's `traceparent`), active while the request
 * is handled: entered at onRequest and again at preHandler (a parsed body's events run in another
 * asynchronous context), ended at onResponse with the status.
 */
export function traceRequests(app: FastifyInstance, tracer: Tracer): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const span = tracer.start(`${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`, SpanKind.server, { 'http.request.method': request.method, 'url.path': request.url.split('?')[0]!.slice(0, 1000) }, parseTraceparent(request.headers.traceparent));
    request.traceSpan = span;
    tracer.enter(span);
    done();
  });
  app.addHook('preHandler', (request, _reply, done) => {
    if (request.traceSpan) tracer.enter(request.traceSpan);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const span = request.traceSpan;
    if (span) {
      span.attributes['http.response.status_code'] = reply.statusCode;
      if (request.routeLabel) {
        span.attributes['http.route'] = request.routeLabel;
        span.name = `${request.method} ${request.routeLabel}`;
      }
      tracer.end(span, reply.statusCode >= 500 ? `HTTP ${reply.statusCode}` : undefined);
    }
    done();
  });
}

/**
 * A driver (BlobStore, MetadataStore) whose every method call inside a traced request is a child
 * span named `<prefix> <path>` (e.g. `metadata manifests.put`, `storage open`). Nested query
 * objects are wrapped too; calls outside any request pass straight through.
 */
export function traced<T extends object>(tracer: Tracer, target: T, prefix: string): T {
  return wrapObject(tracer, target, prefix, '', new WeakMap());
}

function wrapObject<T extends object>(tracer: Tracer, target: T, prefix: string, path: string, cache: WeakMap<object, object>): T {
  const known = cache.get(target);
  if (known) return known as T;
  const proxy = new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver) as unknown;
      if (typeof property !== 'string') return value;
      const name = path ? `${path}.${property}` : property;
      if (typeof value === 'function') {
        return (...args: unknown[]) => tracer.wrap(`${prefix} ${name}`, { 'stowage.component': prefix }, () => Reflect.apply(value, object, args) as unknown);
      }
      if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Date) && Object.getPrototypeOf(value) !== Object.prototype) {
        return wrapObject(tracer, value, prefix, name, cache);
      }
      return value;
    },
  });
  cache.set(target, proxy);
  return proxy;
}

/** `target` traced when tracing is on; itself otherwise. */
export function withTracing<T extends object>(tracing: Tracing | undefined, target: T, prefix: string): T {
  return tracing ? traced(tracing.tracer, target, prefix) : target;
}
