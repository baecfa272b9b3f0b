// OpenTelemetry tracing (tracing.otlpEndpoint): a server span per request, continuing the caller's
// traceparent, with child spans around metadata and storage calls, exported as OTLP/HTTP JSON.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/http-app.js';
import { Receiver } from './receiver.js';

const collector = new Receiver();
let app: TestApp;

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status: { code: number };
}

function spans(): OtlpSpan[] {
  return collector.received.filter((r) => r.path === '/v1/traces').flatMap((r) => r.json.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((s: any) => s.spans)));
}

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
}

beforeAll(async () => {
  await collector.start();
  app = await createTestApp({ flags: { 'tracing.otlpEndpoint': collector.url, 'tracing.serviceName': 'stowage-test' } });
});

afterAll(async () => {
  await app?.cleanup();
  await collector.stop();
});

describe('tracing', () => {
  it('exports request spans with metadata and storage child spans, continuing a traceparent', async () => {
    const image = await app.pushImage('traced/app', 'v1');
    const traceId = 'ab'.repeat(16);
    const parent = 'cd'.repeat(8);
    const pulled = await app.get(`/v2/traced/app/manifests/v1`, { traceparent: `00-${traceId}-${parent}-01`, accept: 'application/vnd.oci.image.manifest.v1+json' });
    expect(pulled.statusCode).toBe(200);
    await collector.waitFor(() => spans().some((s) => s.traceId === traceId && s.name.startsWith('metadata')), 'exported spans', 30_000);

    const all = spans();
    expect(collector.received[0]!.json.resourceSpans[0].resource.attributes).toEqual([{ key: 'service.name', value: { stringValue: 'stowage-test' } }]);
    const put = all.find((s) => s.kind === 2 && s.name === 'PUT manifest')!;
    expect(put).toBeDefined();
    expect(attribute(put, 'http.response.status_code')).toBe('201');
    const children = all.filter((s) => s.parentSpanId === put.spanId);
    expect(children.map((s) => s.name)).toContain('metadata manifests.put');
    expect(children.every((s) => s.traceId === put.traceId && s.kind === 1)).toBe(true);

    const upload = all.find((s) => s.kind === 2 && s.name === 'POST upload')!;
    expect(all.filter((s) => s.parentSpanId === upload.spanId).map((s) => s.name).some((n) => n.startsWith('storage '))).toBe(true);

    const get = all.find((s) => s.kind === 2 && s.traceId === traceId)!;
    expect(get).toMatchObject({ name: 'GET manifest', parentSpanId: parent, status: { code: 1 } });
    expect(all.some((s) => s.parentSpanId === get.spanId && s.name === 'metadata manifests.getByTag')).toBe(true);
    expect(image.digest).toMatch(/^sha256:/);
  });
});
