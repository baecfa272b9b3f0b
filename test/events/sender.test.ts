// The signed sender: headers and signature, the host name kept while the connection goes to the
// checked address, bounded answers and time, refusals before any connection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendDelivery, signature } from '../../src/events/sender.js';
import { Receiver, verifySignature } from './receiver.js';

const receiver = new Receiver();
const delivery = (url: string) => ({ url, body: '{"a":1}', contentType: 'application/json', eventId: 'e-1', eventType: 'tag.moved', deliveryId: '7', secret: 'k'.repeat(16), headers: { 'X-Team': 'blue' } });

beforeAll(async () => {
  await receiver.start();
});

afterAll(async () => {
  await receiver.stop();
});

describe('sendDelivery', () => {
  it('sends the body signed, with the event headers, to a host name pinned to its checked address', async () => {
    const result = await sendDelivery(delivery(`http://localhost:${receiver.port}/in?x=1`), { timeoutMs: 5000, allowPrivateTargets: true });
    expect(result).toMatchObject({ ok: true, status: 200, response: 'ok', refused: false });
    const got = receiver.received.at(-1)!;
    expect(got.path).toBe('/in?x=1');
    expect(got.headers.host).toBe(`localhost:${receiver.port}`);
    expect(got.headers).toMatchObject({ 'x-stowage-event': 'tag.moved', 'x-stowage-event-id': 'e-1', 'idempotency-key': 'e-1', 'x-stowage-delivery': '7', 'x-team': 'blue', 'content-type': 'application/json' });
    expect(got.headers['x-stowage-signature']).toBe(signature('k'.repeat(16), '{"a":1}'));
    expect(verifySignature('k'.repeat(16), got)).toBe(true);
  });

  it('keeps the first KiB of a large answer and fails a silent endpoint after the timeout', async () => {
    receiver.script.push({ status: 502, body: 'y'.repeat(200_000) });
    const big = await sendDelivery(delivery(receiver.url), { timeoutMs: 5000, allowPrivateTargets: true });
    expect(big).toMatchObject({ ok: false, status: 502, error: 'HTTP 502' });
    expect(big.response).toHaveLength(1024);
    receiver.script.push({ status: 200, delayMs: 2000 });
    const started = Date.now();
    const slow = await sendDelivery(delivery(receiver.url), { timeoutMs: 300, allowPrivateTargets: true });
    expect(slow).toMatchObject({ ok: false, status: null, error: 'no answer within 300 ms', refused: false });
    expect(Date.now() - started).toBeLessThan(1900);
  });

  it('refuses before connecting: private targets without the setting, other schemes, bad URLs', async () => {
    const before = receiver.received.length;
    for (const url of [`http://localhost:${receiver.port}/`, `http://127.0.0.1:${receiver.port}/`, `http://[::1]:${receiver.port}/`, 'http://169.254.169.254/latest/meta-data', 'http://10.0.0.1/']) {
      const result = await sendDelivery(delivery(url), { timeoutMs: 1000, allowPrivateTargets: false });
      expect(result, url).toMatchObject({ ok: false, refused: true });
      expect(result.error).toContain('webhooks.allowPrivateTargets');
    }
    expect(await sendDelivery(delivery('ftp://example.com/'), { timeoutMs: 1000, allowPrivateTargets: false })).toMatchObject({ refused: true, error: 'unsupported scheme ftp:' });
    expect(await sendDelivery(delivery('::nonsense'), { timeoutMs: 1000, allowPrivateTargets: false })).toMatchObject({ refused: true, error: 'invalid URL' });
    expect(receiver.received.length).toBe(before);
  });
});
