import { z } from 'zod';

/** OpenTelemetry tracing: off unless an OTLP/HTTP collector endpoint is given. */
export const tracingSchema = z
  .object({
    /** e.g. http://otel-collector:4318 (spans go to <endpoint>/v1/traces, JSON). */
    otlpEndpoint: z.url({ protocol: /^https?$/, error: 'an http(s) URL of an OTLP/HTTP collector, e.g. http://collector:4318' }).optional(),
    serviceName: z.string().min(1).max(100).default('stowage'),
  })
  .strict()
  .prefault({});

export const tracingSettings = [
  { key: 'tracing.otlpEndpoint', env: 'STOWAGE_OTLP_ENDPOINT', flag: '--otlp-endpoint <url>', help: 'send OpenTelemetry trace spans to this OTLP/HTTP collector (default: tracing off)' },
  { key: 'tracing.serviceName', env: 'STOWAGE_TRACING_SERVICE_NAME', flag: '--tracing-service-name <name>', help: 'service.name of the spans (default stowage)' },
] as const;
