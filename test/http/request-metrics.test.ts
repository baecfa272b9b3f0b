import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { durationBuckets, RequestMetrics } from '../../src/http/request-metrics.js';

/** The requests below, counted the way prom-client's own metrics count them (the reference). */
function reference(requests: Request[]): client.Registry {
  const registry = new client.Registry();
  const counter = new client.Counter({ name: 'stowage_http_requests_total', help: 'HTTP requests by method, route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const histogram = new client.Histogram({ name: 'stowage_http_request_duration_seconds', help: 'HTTP request latency by method and route', labelNames: ['method', 'route'], buckets: durationBuckets, registers: [registry] });
  const bytesIn = new client.Counter({ name: 'stowage_http_received_bytes_total', help: 'Bytes received on HTTP connections (headers included)', registers: [registry] });
  const bytesOut = new client.Counter({ name: 'stowage_http_sent_bytes_total', help: 'Bytes sent on HTTP connections (headers included)', registers: [registry] });
  for (const [method, route, status, seconds, inBytes, outBytes] of requests) {
    counter.inc({ method, route, status });
    histogram.observe({ method, route }, seconds);
    bytesIn.inc(inBytes);
    bytesOut.inc(outBytes);
  }
  return registry;
}

function tallied(requests: Request[]): client.Registry {
  const registry = new client.Registry();
  const metrics = new RequestMetrics(registry);
  for (const request of requests) metrics.record(...request);
  return registry;
}

type Request = [method: string, route: string, status: number, seconds: number, bytesIn: number, bytesOut: number];

/** The exposition's lines, sorted: series order within a metric is not part of the format. */
const lines = (text: string) => text.split('\n').filter(Boolean).sort();

// Latencies on and between bucket bounds, below the first and above the last.
const requests: Request[] = [
  ['GET', 'manifest', 200, 0.0001, 200, 1500],
  ['GET', 'manifest', 200, 0.0005, 200, 1500],
  ['GET', 'manifest', 404, 0.003, 210, 300],
  ['HEAD', 'blob', 200, 0.0025, 180, 250],
  ['GET', 'blob', 200, 12.5, 190, 1_048_576],
  ['PUT', 'manifest', 201, 75, 2_000, 120],
  ['GET', 'manifest', 200, 0.07, 200, 1500],
  ['HEAD', 'blob', 404, 1, 180, 200],
];

describe('request metrics', () => {
  it('expose the same series as prom-client counters and a histogram fed request by request', async () => {
    const expected = lines(await reference(requests).metrics());
    const actual = lines(await tallied(requests).metrics());
    expect(actual).toEqual(expected);
    expect(actual).toContain('stowage_http_requests_total{method="GET",route="manifest",status="200"} 3');
    expect(actual).toContain('stowage_http_request_duration_seconds_bucket{le="0.0005",method="GET",route="manifest"} 2');
    expect(actual).toContain('stowage_http_request_duration_seconds_bucket{le="60",method="PUT",route="manifest"} 0');
    expect(actual).toContain('stowage_http_request_duration_seconds_bucket{le="+Inf",method="PUT",route="manifest"} 1');
  });

  it('add up across processes like prom-client metrics do', async () => {
    const first = requests.slice(0, 5);
    const second = requests.slice(3);
    const node = (registries: client.Registry[]) =>
      Promise.all(registries.map((r) => r.getMetricsAsJSON())).then((all) => client.AggregatorRegistry.aggregate(all as Parameters<typeof client.AggregatorRegistry.aggregate>[0]).metrics());
    const expected = lines(await node([reference(first), reference(second)]));
    const actual = lines(await node([tallied(first), tallied(second)]));
    expect(actual).toEqual(expected);
    expect(actual).toContain('stowage_http_requests_total{method="HEAD",route="blob",status="200"} 2');
  });

  it('report the same totals on every scrape (scraping does not count twice)', async () => {
    const registry = new client.Registry();
    const metrics = new RequestMetrics(registry);
    metrics.record('GET', 'base', 200, 0.001, 100, 50);
    await registry.metrics();
    metrics.record('GET', 'base', 200, 0.001, 100, 50);
    const text = lines(await registry.metrics());
    expect(text).toContain('stowage_http_requests_total{method="GET",route="base",status="200"} 2');
    expect(text).toContain('stowage_http_request_duration_seconds_count{method="GET",route="base"} 2');
    expect(text).toContain('stowage_http_received_bytes_total 200');
    expect(text).toContain('stowage_http_sent_bytes_total 100');
  });
});
