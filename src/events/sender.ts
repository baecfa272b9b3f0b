import { createHmac } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { resolveTarget, TargetRefusedError } from './ssrf.js';

/** The most of an answer that is read; the rest is discarded (the connection is closed). */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** What the delivery log keeps of an answer. */
export const EXCERPT_BYTES = 1024;

export interface Delivery {
  url: string;
  body: string;
  contentType: string;
  /** The event's id: the idempotency key of every attempt. */
  eventId: string;
  eventType: string;
  deliveryId: string;
  secret: string | null;
  headers: Record<string, string>;
}

export interface SendOptions {
  timeoutMs: number;
  allowPrivateTargets: boolean;
  now?: () => number;
}

export interface SendResult {
  ok: boolean;
  status: number | null;
  error: string | null;
  latencyMs: number;
  /** The first KiB of the answer (text). */
  response: string | null;
  /** Refused before sending (SSRF rule, bad URL): retrying cannot help until the webhook changes. */
  refused: boolean;
}

/** Scheme, host and port of a URL: what logs keep of a webhook's target (paths may hold secrets). */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** `sha256=<hex HMAC-SHA256 of the raw body>`: how receivers verify that Stowage sent it. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * POSTs one delivery: the host is resolved and checked once (see ssrf.ts) and the connection goes
 * to that checked address; the whole exchange is bounded by `timeoutMs`, the answer read is
 * bounded to 64 KiB. Never throws: failures come back as results.
 */
export async function sendDelivery(delivery: Delivery, options: SendOptions): Promise<SendResult> {
  const now = options.now ?? Date.now;
  const started = now();
  const failed = (error: string, refused = false, status: number | null = null, response: string | null = null): SendResult => ({
    ok: false,
    status,
    error,
    latencyMs: now() - started,
    response,
    refused,
  });
  let url: URL;
  try {
    url = new URL(delivery.url);
  } catch {
    return failed('invalid URL', true);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return failed(`unsupported scheme ${url.protocol}`, true);
  let pinned;
  try {
    pinned = await resolveTarget(url.hostname, options.allowPrivateTargets);
  } catch (error) {
    if (error instanceof TargetRefusedError) return failed(error.message, true);
    return failed(`cannot resolve ${url.hostname}: ${(error as Error).message}`);
  }
  // Connect to the checked address whatever the host name resolves to by then.
  const lookup: LookupFunction = (_host, opts, callback) => {
    if ((opts as { all?: boolean }).all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
  const timestamp = String(Math.floor(now() / 1000));
  const headers: Record<string, string> = {
    ...delivery.headers,
    'content-type': delivery.contentType,
    'content-length': String(Buffer.byteLength(delivery.body)),
    'user-agent': 'Stowage-Webhook/1',
    'x-stowage-event': delivery.eventType,
    'x-stowage-event-id': delivery.eventId,
    'x-stowage-delivery': delivery.deliveryId,
    'idempotency-key': delivery.eventId,
    'x-stowage-timestamp': timestamp,
  };
  if (delivery.secret) headers['x-stowage-signature'] = signature(delivery.secret, delivery.body);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<SendResult>((resolve) => {
    let settled = false;
    const finish = (result: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    // TLS verifies the certificate against the host name, not the pinned address (SNI: names only).
    const servername = isIP(url.hostname.replace(/^\[|\]$/g, '')) ? undefined : url.hostname;
    const req = send(url, { method: 'POST', headers, lookup, servername, agent: false }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_RESPONSE_BYTES) chunks.push(chunk);
        size += chunk.length;
        if (size >= MAX_RESPONSE_BYTES) res.destroy();
      });
      const done = () => {
        const status = res.statusCode ?? 0;
        const excerpt = Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
        const ok = status >= 200 && status < 300;
        finish({ ok, status, error: ok ? null : `HTTP ${status}`, latencyMs: now() - started, response: excerpt || null, refused: false });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(failed(`no answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    req.on('error', (error) => finish(failed(error.message)));
    req.end(delivery.body);
  });
}
