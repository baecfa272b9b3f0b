// The audit log counts repeated identical events into one entry (src/control/audit.ts): every
// pull is still counted, with who, from where, what and when, but a client that pulls one tag
// over and over does not write a row per pull.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, mediaTypes, type TestApp } from '../support/http-app.js';

describe('audit log entries for repeated events', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp();
  });
  afterAll(async () => {
    await app.cleanup();
  });

  const pull = (reference: string, remoteAddress: string) =>
    app.inject({ method: 'GET', url: `/v2/lib/app/manifests/${reference}`, headers: { accept: mediaTypes.ociManifest }, remoteAddress });

  async function pullEntries() {
    const audit = app.app.access.control.audit;
    const { items } = await audit.query({ action: 'manifest.pull' }, { offset: 0, limit: 1000 });
    return items;
  }

  it('counts identical pulls into one entry per batch, and keeps different ones apart', async () => {
    const { digest } = await app.pushImage('lib/app', 'v1');
    for (let i = 0; i < 40; i++) expect((await pull('v1', '127.0.0.1')).statusCode).toBe(200);
    for (let i = 0; i < 7; i++) expect((await pull('v1', '10.0.0.9')).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) expect((await pull(digest, '127.0.0.1')).statusCode).toBe(200);
    expect((await pull('missing', '127.0.0.1')).statusCode).toBe(404);

    const entries = await pullEntries();
    const of = (address: string, target: string) => entries.filter((e) => e.address === address && e.target === target);
    const total = (list: typeof entries) => list.reduce((sum, e) => sum + e.count, 0);
    // Every successful pull is counted once, under its own address and target.
    expect(total(of('127.0.0.1', 'lib/app:v1'))).toBe(40);
    expect(total(of('10.0.0.9', 'lib/app:v1'))).toBe(7);
    expect(total(of('127.0.0.1', `lib/app@${digest}`))).toBe(3);
    expect(total(entries)).toBe(50);
    // Far fewer rows than pulls (a batch lasts up to 0.5 s; the 40 pulls take a fraction of that).
    expect(of('127.0.0.1', 'lib/app:v1').length).toBeLessThan(10);
    expect(of('127.0.0.1', 'lib/app:v1')[0]).toMatchObject({ actor: 'anonymous', result: 'success', project: 'lib', detail: { digest } });
  });

  it('starts a new entry after a write, so an entry never spans more than one batch', async () => {
    const before = (await pullEntries()).length;
    await pull('v1', '10.0.0.10');
    await app.app.access.control.audit.flush();
    await pull('v1', '10.0.0.10');
    await pull('v1', '10.0.0.10');
    const entries = (await pullEntries()).filter((e) => e.address === '10.0.0.10');
    expect(entries.map((e) => e.count)).toEqual([2, 1]);
    expect(entries[0]!.at.getTime()).toBeGreaterThanOrEqual(entries[1]!.at.getTime());
    expect((await pullEntries()).length).toBe(before + 2);
  });
});
