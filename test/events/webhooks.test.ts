// Webhooks end to end, in process: events of every kind reach a receiver on 127.0.0.1 through the
// outbox and the dispatcher, in each payload format, signed; retries after 500s and timeouts,
// dead letters, redelivery, order per repository, the SSRF rule, and secrets never shown.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, addProject, addUser, api, apiOk, authorizeRegistryRequests, createAuthApp, tokenFor, type Creds } from '../support/auth.js';
import { createTestApp, type TestApp } from '../support/http-app.js';
import { isPrivateAddress } from '../../src/events/ssrf.js';
import { Receiver, verifySignature, type Received } from './receiver.js';

const SECRET = 'a-webhook-secret-0123456789';
let app: TestApp;
let owner: Creds;
let dev: Creds;
const receivers: Receiver[] = [];

async function receiver(): Promise<Receiver> {
  const r = new Receiver();
  await r.start();
  receivers.push(r);
  return r;
}

async function addWebhook(body: Record<string, unknown>, as: Creds = ADMIN): Promise<any> {
  return apiOk(app, 'POST', '/webhooks', { as, body });
}

async function deliveries(id: string): Promise<any[]> {
  return (await apiOk(app, 'GET', `/webhooks/${id}/deliveries`, { as: ADMIN })).items;
}

async function waitForDeliveries(id: string, predicate: (items: any[]) => boolean, what: string): Promise<any[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const items = await deliveries(id);
    if (predicate(items)) return items;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(items)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  app = await createAuthApp({
    flags: {
      'node.name': 'node-t',
      'events.pulls': 'all',
      'webhooks.allowPrivateTargets': 'true',
      'webhooks.pollInterval': '50ms',
      'webhooks.retryBase': '50ms',
      'webhooks.retryMax': '200ms',
      'webhooks.timeout': '1s',
      'webhooks.maxAttempts': '3',
      'webhooks.breakerThreshold': '1000',
    },
  });
  owner = await addUser(app, 'owner');
  dev = await addUser(app, 'dev');
  await addProject(app, 'team', { members: { owner: 'owner', dev: 'developer' } });
  authorizeRegistryRequests(app, await tokenFor(app, ADMIN, ['repository:team/app:pull,push,delete', 'repository:fmt/app:pull,push', 'repository:order/app:pull,push', 'repository:retry/app:pull,push', 'repository:dead/app:pull,push']));
  app.app.dispatcher.start();
});

afterAll(async () => {
  await app?.cleanup();
  for (const r of receivers) await r.stop();
});

describe('events and webhooks', () => {
  it('delivers every registry and project event, signed, in the Stowage format, with the event id as idempotency key', async () => {
    const r = await receiver();
    const hook = await addWebhook({ url: `${r.url}/hook`, secret: SECRET, repository: 'team/*' });
    const projectHook = await addWebhook({ url: `${r.url}/project`, project: 'team', events: ['project.updated', 'member.changed', 'member.removed'] }, owner);

    const image = await app.pushImage('team/app', 'v1');
    expect((await app.get(`/v2/team/app/manifests/v1`)).statusCode).toBe(200);
    await apiOk(app, 'DELETE', '/repositories/team/app/-/tags/v1', { as: ADMIN });
    await app.pushManifest('team/app', 'v2', image.manifest);
    expect((await app.delete(`/v2/team/app/manifests/${image.digest}`)).statusCode).toBe(202);
    await apiOk(app, 'PATCH', '/projects/team', { as: owner, body: { public: true }, status: 200 });
    await apiOk(app, 'PUT', '/projects/team/members/dev', { as: owner, body: { role: 'maintainer' } });
    await apiOk(app, 'DELETE', '/projects/team/members/dev', { as: owner });

    await r.waitFor((all) => all.filter((x) => x.path === '/hook').length >= 8 && all.filter((x) => x.path === '/project').length >= 3, 'all events');
    const hooked = r.received.filter((x) => x.path === '/hook');
    // Pull events are written in batches, off the pull's path: they come when their batch does.
    const changes = hooked.filter((x) => x.json.type !== 'artifact.pulled');
    expect(changes.map((x) => x.json.type)).toEqual(['artifact.pushed', 'tag.moved', 'tag.deleted', 'artifact.pushed', 'tag.moved', 'tag.deleted', 'artifact.deleted']);
    for (const x of hooked) {
      expect(verifySignature(SECRET, x)).toBe(true);
      expect(x.headers['idempotency-key']).toBe(x.json.id);
      expect(x.headers['x-stowage-event-id']).toBe(x.json.id);
      expect(Number(x.headers['x-stowage-timestamp'])).toBeGreaterThan(Date.now() / 1000 - 120);
      expect(x.headers['content-type']).toBe('application/json');
      expect(x.json).toMatchObject({ project: 'team', repository: 'team/app', source: { node: 'node-t' } });
    }
    const [pushed, moved, untagged, pushed2, moved2, untagged2, deleted] = changes.map((x) => x.json);
    const pulled = hooked.find((x) => x.json.type === 'artifact.pulled')!.json;
    expect(pushed2).toMatchObject({ tag: 'v2', digest: image.digest });
    expect(pushed).toMatchObject({ tag: 'v1', digest: image.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: image.manifest.length, actor: { name: 'admin', kind: 'user' }, source: { address: '127.0.0.1' } });
    expect(moved).toMatchObject({ tag: 'v1', digest: image.digest, previousDigest: null });
    expect(pulled).toMatchObject({ tag: 'v1', digest: image.digest, size: image.manifest.length });
    expect(untagged).toMatchObject({ tag: 'v1', previousDigest: image.digest, actor: { name: 'admin' } });
    expect(moved2).toMatchObject({ tag: 'v2', digest: image.digest, previousDigest: null });
    expect(untagged2).toMatchObject({ tag: 'v2', previousDigest: image.digest });
    expect(deleted).toMatchObject({ digest: image.digest, tag: null });
    expect(new Set(hooked.map((x) => x.json.id)).size).toBe(8);

    const project = r.received.filter((x) => x.path === '/project').map((x) => x.json);
    expect(project.map((e) => e.type)).toEqual(['project.updated', 'member.changed', 'member.removed']);
    expect(project[1]).toMatchObject({ project: 'team', actor: { name: 'owner' }, detail: { user: 'dev', role: 'maintainer' } });
    expect(r.received.filter((x) => x.path === '/project').every((x) => x.headers['x-stowage-signature'] === undefined)).toBe(true);

    const log = await waitForDeliveries(hook.id, (items) => items.length === 8 && items.every((d) => d.state === 'delivered'), 'delivered log');
    expect(log[0]).toMatchObject({ attempts: 1, lastStatus: 200, response: 'ok', webhookId: hook.id });
    expect(typeof log[0].latencyMs).toBe('number');
    expect(projectHook.project).toBe('team');
  });

  it('reports the tags and manifests of a repository or project deleted through the API', async () => {
    const r = await receiver();
    await addWebhook({ url: r.url, repository: 'gone/*', events: ['tag.deleted', 'artifact.deleted'] });
    const projects = await receiver();
    await addWebhook({ url: projects.url, events: ['project.created', 'project.deleted'] });
    await apiOk(app, 'POST', '/projects', { as: ADMIN, body: { name: 'gone' } });
    const token = await tokenFor(app, ADMIN, ['repository:gone/a:pull,push', 'repository:gone/b:pull,push']);
    const push = (repository: string, tag: string) => app.pushImage(repository, tag).then((i) => i.digest);
    const headers = { authorization: `Bearer ${token}` };
    const inject = app.inject.bind(app);
    app.inject = (options) => inject(typeof options === 'object' && String(options.url).startsWith('/v2/gone/') ? { ...options, headers: { ...options.headers, ...headers } } : options);
    try {
      const a = await push('gone/a', 'x');
      const b = await push('gone/b', 'y');
      await apiOk(app, 'DELETE', '/repositories/gone/a', { as: ADMIN });
      await r.waitFor((all) => all.length >= 2, 'repository removal events');
      await apiOk(app, 'DELETE', '/projects/gone?force=true', { as: ADMIN });
      await r.waitFor((all) => all.length >= 4, 'project removal events');
      expect(r.received.map((x) => [x.json.type, x.json.repository, x.json.tag, x.json.digest ?? x.json.previousDigest, x.json.actor.name])).toEqual([
        ['tag.deleted', 'gone/a', 'x', a, 'admin'],
        ['artifact.deleted', 'gone/a', null, a, 'admin'],
        ['tag.deleted', 'gone/b', 'y', b, 'admin'],
        ['artifact.deleted', 'gone/b', null, b, 'admin'],
      ]);
      await projects.waitFor((all) => all.length >= 2, 'project events');
      expect(projects.received.map((x) => [x.json.type, x.json.project, x.json.actor.name, x.json.detail])).toEqual([
        ['project.created', 'gone', 'admin', { public: false }],
        ['project.deleted', 'gone', 'admin', { force: true }],
      ]);
    } finally {
      app.inject = inject;
    }
  });

  it('reports a push refused by the project quota', async () => {
    const r = await receiver();
    await addWebhook({ url: r.url, project: 'team', events: ['quota.exceeded'] });
    await apiOk(app, 'PUT', '/projects/team/quota', { as: ADMIN, body: { bytes: 1 }, status: 200 });
    try {
      const refused = await app.post(`/v2/team/app/blobs/uploads/?digest=sha256:${createHash('sha256').update('too big').digest('hex')}`, Buffer.from('too big'), { 'content-type': 'application/octet-stream' });
      expect(refused.statusCode).toBe(403);
      await r.waitFor((all) => all.length === 1, 'quota event');
      expect(r.received[0]!.json).toMatchObject({ type: 'quota.exceeded', project: 'team', repository: 'team/app', actor: { name: 'admin' }, detail: { kind: 'bytes', limit: 1 } });
    } finally {
      await apiOk(app, 'PUT', '/projects/team/quota', { as: ADMIN, body: { bytes: null }, status: 200 });
    }
  });

  it('renders CloudEvents, the Distribution envelope and Slack messages', async () => {
    const r = await receiver();
    for (const format of ['cloudevents', 'distribution', 'slack']) await addWebhook({ url: `${r.url}/${format}`, format, repository: 'fmt/*', events: ['artifact.pushed'] });
    const image = await app.pushImage('fmt/app', '1.0');
    await r.waitFor((all) => all.length >= 3, 'three formats');
    const by = (path: string) => r.received.find((x) => x.path === path)!;
    const ce = by('/cloudevents');
    expect(ce.headers['content-type']).toBe('application/cloudevents+json');
    expect(ce.json).toMatchObject({ specversion: '1.0', type: 'io.stowage.artifact.pushed', subject: image.digest, datacontenttype: 'application/json', data: { repository: 'fmt/app', tag: '1.0' } });
    expect(ce.json.id).toBe(ce.headers['idempotency-key']);
    const dist = by('/distribution');
    expect(dist.headers['content-type']).toBe('application/vnd.docker.distribution.events.v1+json');
    expect(dist.json.events).toHaveLength(1);
    expect(dist.json.events[0]).toMatchObject({
      action: 'push',
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.digest, size: image.manifest.length, length: image.manifest.length, repository: 'fmt/app', tag: '1.0' },
      request: { addr: '127.0.0.1', method: 'PUT' },
      actor: { name: 'admin' },
      source: { instanceID: 'node-t' },
    });
    expect(dist.json.events[0].target.url).toContain(`/v2/fmt/app/manifests/${image.digest}`);
    expect(by('/slack').json).toEqual({ text: `admin pushed fmt/app:1.0 (${image.digest})` });
  });

  it('retries after a 500 and after a timeout, then delivers; the log shows the attempts', async () => {
    const r = await receiver();
    r.script.push({ status: 500, body: 'boom' }, { status: 200, delayMs: 1500 });
    const hook = await addWebhook({ url: r.url, repository: 'retry/*', events: ['artifact.pushed'] });
    await app.pushImage('retry/app', 'x');
    const [entry] = await waitForDeliveries(hook.id, (items) => items[0]?.state === 'delivered', 'delivery after retries');
    expect(entry).toMatchObject({ attempts: 3, lastStatus: 200, lastError: null });
    // The 500 and the success were received (the timed-out attempt's answer came too late).
    expect(r.received.map((x) => x.headers['idempotency-key'])).toEqual([entry.eventId, entry.eventId]);
  });

  it('dead-letters after webhooks.maxAttempts, keeps the answer, and redelivers on request', async () => {
    const r = await receiver();
    r.fallback = { status: 503, body: 'x'.repeat(5000) };
    const hook = await addWebhook({ url: r.url, repository: 'dead/*', events: ['artifact.pushed'] });
    await app.pushImage('dead/app', 'x');
    const [dead] = await waitForDeliveries(hook.id, (items) => items[0]?.state === 'dead', 'dead letter');
    expect(dead).toMatchObject({ attempts: 3, lastStatus: 503, lastError: 'HTTP 503' });
    expect(dead.response).toHaveLength(1024);
    expect(r.received).toHaveLength(3);

    r.fallback = { status: 204 };
    const again = await apiOk(app, 'POST', `/webhooks/${hook.id}/deliveries/${dead.id}/redeliver`, { as: ADMIN, status: 202 });
    expect(again).toMatchObject({ eventId: dead.eventId, state: 'pending' });
    await waitForDeliveries(hook.id, (items) => items.find((d) => d.id === again.id)?.state === 'delivered', 'redelivery');
    expect(r.received.at(-1)!.headers['idempotency-key']).toBe(dead.eventId);
    expect((await api(app, 'POST', `/webhooks/${hook.id}/deliveries/999999/redeliver`, { as: ADMIN })).statusCode).toBe(404);
  });

  it("delivers a repository's events in order, even when an early one needs retries", async () => {
    const r = await receiver();
    r.script.push({ status: 500 }, { status: 500 });
    await addWebhook({ url: r.url, repository: 'order/*', events: ['tag.moved'] });
    const tags = ['t1', 't2', 't3', 't4', 't5'];
    for (const tag of tags) await app.pushImage('order/app', tag);
    await r.waitFor((all) => all.filter((x) => x.json).length >= 7, 'ordered events');
    const delivered: Received[] = [];
    // The first event was answered 500 twice: only then (and in order) come the others.
    expect(r.received.slice(0, 3).map((x) => x.json.tag)).toEqual(['t1', 't1', 't1']);
    delivered.push(...r.received.slice(2));
    expect(delivered.map((x) => x.json.tag)).toEqual(tags);
  });

  it('sends a test event to one webhook on request', async () => {
    const r = await receiver();
    const hook = await addWebhook({ url: r.url, project: 'team', format: 'slack' }, owner);
    const delivery = await apiOk(app, 'POST', `/webhooks/${hook.id}/test`, { as: owner, status: 202 });
    expect(delivery).toMatchObject({ eventType: 'webhook.test', state: 'pending' });
    await r.waitFor((all) => all.length === 1, 'test event');
    expect(r.received[0]!.json.text).toContain('Test event from Stowage');
    expect(r.received[0]!.headers['x-stowage-event']).toBe('webhook.test');
  });

  it("holds a disabled webhook's pending deliveries until it is enabled again, and sends it nothing new", async () => {
    const r = await receiver();
    r.script.push({ status: 500 });
    const hook = await addWebhook({ url: r.url, repository: 'off/*', events: ['tag.moved'] });
    const token = await tokenFor(app, ADMIN, ['repository:off/app:pull,push']);
    const inject = app.inject.bind(app);
    app.inject = (options) => inject(typeof options === 'object' && String(options.url).startsWith('/v2/off/') ? { ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } } : options);
    try {
      await app.pushImage('off/app', 'x');
      await r.waitFor((all) => all.length === 1, 'the first, failed attempt');
      await apiOk(app, 'PATCH', `/webhooks/${hook.id}`, { as: ADMIN, body: { enabled: false }, status: 200 });
      expect((await api(app, 'POST', `/webhooks/${hook.id}/test`, { as: ADMIN })).statusCode).toBe(409);
      await app.pushImage('off/app', 'y');
    } finally {
      app.inject = inject;
    }
    // Retries are due every 50 to 200 ms, but nothing is sent while the webhook is off.
    await new Promise((res) => setTimeout(res, 600));
    expect(r.received).toHaveLength(1);
    await apiOk(app, 'PATCH', `/webhooks/${hook.id}`, { as: ADMIN, body: { enabled: true }, status: 200 });
    await r.waitFor((all) => all.length === 2, 'the held delivery');
    await new Promise((res) => setTimeout(res, 300));
    expect(r.received.map((x) => x.json.tag)).toEqual(['x', 'x']);
  });

  it('never shows a secret: not in the API, the list, nor the audit log', async () => {
    const hook = await addWebhook({ url: 'https://hooks.example.com/x', secret: SECRET, headers: { 'X-Team': 'a' } });
    expect(hook.hasSecret).toBe(true);
    expect(hook).not.toHaveProperty('secret');
    for (const path of [`/webhooks/${hook.id}`, '/webhooks', '/audit?action=webhook.create']) {
      const response = await api(app, 'GET', path, { as: ADMIN });
      expect(response.statusCode).toBe(200);
      expect(response.body).not.toContain(SECRET);
    }
    const changed = await apiOk(app, 'PATCH', `/webhooks/${hook.id}`, { as: ADMIN, body: { secret: null }, status: 200 });
    expect(changed.hasSecret).toBe(false);
  });

  it('validates input and permissions', async () => {
    const bad = await api(app, 'POST', '/webhooks', { as: ADMIN, body: { url: 'ftp://x', format: 'xml', events: ['nope'], headers: { 'X-Stowage-Signature': 'x' } } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.fields.map((f: { field: string }) => f.field).sort()).toEqual(['events.0', 'format', 'headers.X-Stowage-Signature', 'url']);
    expect((await api(app, 'POST', '/webhooks', { as: ADMIN, body: { url: 'https://u:p@example.com/' } })).statusCode).toBe(400);
    const unparsable = await api(app, 'POST', '/webhooks', { as: ADMIN, body: { url: 'not a url' } });
    expect(unparsable.statusCode).toBe(400);
    expect(unparsable.json().error.fields).toEqual([{ field: 'url', message: 'an http:// or https:// URL' }]);
    expect((await api(app, 'POST', '/webhooks', { as: dev, body: { url: 'https://example.com/', project: 'team' } })).statusCode).toBe(403);
    expect((await api(app, 'POST', '/webhooks', { as: owner, body: { url: 'https://example.com/' } })).statusCode).toBe(403);
    expect((await api(app, 'GET', '/webhooks', { as: owner })).statusCode).toBe(403);
    expect((await api(app, 'GET', '/webhooks?project=team', { as: owner })).statusCode).toBe(200);
    expect((await api(app, 'GET', '/webhooks')).statusCode).toBe(401);
    const systemHook = await addWebhook({ url: 'https://example.com/' });
    expect((await api(app, 'GET', `/webhooks/${systemHook.id}`, { as: owner })).statusCode).toBe(404);
    expect((await api(app, 'DELETE', `/webhooks/${systemHook.id}`, { as: ADMIN })).statusCode).toBe(204);
    expect((await api(app, 'GET', `/webhooks/${systemHook.id}`, { as: ADMIN })).statusCode).toBe(404);
  });

  it('are in the OpenAPI document', async () => {
    const doc = (await app.get('/api/v1/openapi.json')).json();
    for (const path of ['/api/v1/webhooks', '/api/v1/webhooks/{id}', '/api/v1/webhooks/{id}/test', '/api/v1/webhooks/{id}/deliveries', '/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(Object.keys(doc.paths['/api/v1/webhooks'].post.requestBody.content['application/json'].schema.properties)).toEqual(
      expect.arrayContaining(['url', 'project', 'events', 'repository', 'tag', 'secret', 'headers', 'format', 'enabled']),
    );
  });

  it('counts deliveries in /metrics', async () => {
    const metrics = (await app.get('/metrics')).body;
    expect(metrics).toMatch(/stowage_webhook_deliveries_delivered_total\{format="stowage"\} [1-9]/);
    expect(metrics).toMatch(/stowage_webhook_delivery_failures_total\{reason="status"\} [1-9]/);
    expect(metrics).toMatch(/stowage_events_produced_total [1-9]/);
    expect(metrics).toContain('stowage_webhook_delivery_duration_seconds_bucket');
    expect(metrics).toMatch(/stowage_webhook_deliveries_queued \d/);
  });
});

describe('SSRF rule', () => {
  it('classifies loopback, private, link-local, unique-local, multicast and mapped addresses', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', '::', 'fe80::1', 'fd00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:a9fe:a9fe']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
  });

  it('refuses a loopback target without webhooks.allowPrivateTargets: dead-lettered, nothing sent', async () => {
    const guarded = await createTestApp({ flags: { 'webhooks.pollInterval': '50ms' } });
    const r = await receiver();
    try {
      guarded.app.dispatcher.start();
      const hook = (await guarded.inject({ method: 'POST', url: '/api/v1/webhooks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ url: `http://localhost:${r.port}/` }) })).json();
      await guarded.pushImage('lib/app', 'x');
      const deadline = Date.now() + 30_000;
      let items: any[] = [];
      while (Date.now() < deadline) {
        items = (await guarded.get(`/api/v1/webhooks/${hook.id}/deliveries`)).json().items;
        if (items.length >= 2 && items.every((d: any) => d.state === 'dead')) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(items.map((d: any) => d.state)).toEqual(['dead', 'dead']);
      expect(items[0].lastError).toContain('webhooks.allowPrivateTargets');
      expect(items[0].attempts).toBe(1);
      expect(r.received).toHaveLength(0);
    } finally {
      await guarded.cleanup();
    }
  });
});

describe('per-webhook limits', () => {
  let limited: TestApp;

  beforeAll(async () => {
    limited = await createTestApp({
      flags: {
        'webhooks.allowPrivateTargets': 'true',
        'webhooks.pollInterval': '20ms',
        'webhooks.concurrency': '2',
        'webhooks.retryBase': '10ms',
        'webhooks.retryMax': '10ms',
        'webhooks.breakerThreshold': '3',
        'webhooks.breakerCooldown': '1h',
        'webhooks.timeout': '5s',
      },
    });
    limited.app.dispatcher.start();
  });

  afterAll(async () => {
    await limited?.cleanup();
  });

  async function hook(url: string, repository: string): Promise<any> {
    const response = await limited.inject({ method: 'POST', url: '/api/v1/webhooks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ url, repository, events: ['tag.moved'] }) });
    expect(response.statusCode, response.body).toBe(201);
    return response.json();
  }

  it('keeps at most webhooks.concurrency requests in flight per webhook', async () => {
    const r = await receiver();
    let open = 0;
    let peak = 0;
    // Slow answers: the dispatcher would otherwise have many requests open at once.
    r.fallback = { status: 200, delayMs: 150 };
    const server = (r as unknown as { server: import('node:http').Server }).server;
    server.on('request', (_req, res) => {
      open++;
      peak = Math.max(peak, open);
      res.on('close', () => open--);
    });
    await hook(r.url, 'par/*');
    // Ten repositories: nothing orders them, so only the limit holds the requests back.
    for (let i = 0; i < 10; i++) await limited.pushImage(`par/r${i}`, 'x');
    await r.waitFor((all) => all.length >= 10, 'ten deliveries');
    expect(peak).toBe(2);
  });

  it('opens the circuit breaker after webhooks.breakerThreshold consecutive failures', async () => {
    const r = await receiver();
    r.fallback = { status: 500 };
    const created = await hook(r.url, 'brk/*');
    for (let i = 0; i < 3; i++) await limited.pushImage(`brk/r${i}`, 'x');
    await r.waitFor((all) => all.length >= 3, 'three failures');
    // Retries are due every 10 ms, but the breaker stays open for an hour: after the requests
    // that were in flight when it opened (at most concurrency - 1 more), nothing is sent.
    await new Promise((res) => setTimeout(res, 300));
    const sent = r.received.length;
    expect(sent).toBeLessThanOrEqual(4);
    await new Promise((res) => setTimeout(res, 700));
    expect(r.received).toHaveLength(sent);
    const items = (await limited.get(`/api/v1/webhooks/${created.id}/deliveries`)).json().items;
    expect(items.every((d: any) => d.state === 'pending')).toBe(true);
    expect(items.reduce((n: number, d: any) => n + d.attempts, 0)).toBe(sent);
  });
});
