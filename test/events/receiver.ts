// A webhook receiver on 127.0.0.1 that records every request; how it answers is set per test.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
  at: number;
}

/** How to answer one request: a status, optionally after a delay (longer than the timeout: a hang). */
export type Answer = { status: number; delayMs?: number; body?: string };

export class Receiver {
  readonly received: Received[] = [];
  /** Answers for the next requests, in order; afterwards `fallback`. */
  readonly script: Answer[] = [];
  fallback: Answer = { status: 200, body: 'ok' };
  private server!: Server;

  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(body);
        } catch {}
        const answer = this.script.shift() ?? this.fallback;
        if (answer.delayMs) await sleep(answer.delayMs);
        // A request that hung past the sender's timeout is not recorded as received.
        if (res.destroyed || req.socket.destroyed) return;
        this.received.push({ path: req.url ?? '', headers: req.headers, body, json, at: Date.now() });
        res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body ?? '');
      });
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Requests whose Stowage event type is `type`. */
  ofType(type: string): Received[] {
    return this.received.filter((r) => r.headers['x-stowage-event'] === type);
  }

  /** Waits (bounded) until `predicate` holds over what was received. */
  async waitFor(predicate: (received: Received[]) => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.received)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received: ${this.received.map((r) => r.headers['x-stowage-event']).join(', ')}`);
      await sleep(25);
    }
  }
}

/** Verifies X-Stowage-Signature as a receiver would: HMAC-SHA256 of the raw body, constant-time compare. */
export function verifySignature(secret: string, received: Received): boolean {
  const expected = `sha256=${createHmac('sha256', secret).update(received.body).digest('hex')}`;
  const given = String(received.headers['x-stowage-signature'] ?? '');
  return given.length === expected.length && Buffer.from(given).equals(Buffer.from(expected));
}
