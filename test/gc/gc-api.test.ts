// Garbage collection through the API: runs that delete exactly the unreferenced blobs past the
// grace period (metadata and bytes), progress records, one run at a time, the rescue of a queued
// blob by a new push, abandoned uploads, audit, metrics, permissions and input errors.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, addProject, addUser, api, apiOk, authorizeRegistryRequests, createAuthApp, sqlite, tokenFor } from '../support/auth.js';
import { sha256, type TestApp } from '../support/http-app.js';

let app: TestApp;

beforeAll(async () => {
  app = await createAuthApp({ flags: { 'uploads.expiry': '2s' } });
  await addProject(app, 'team');
  await addProject(app, 'other');
  const token = await tokenFor(app, ADMIN, ['repository:team/app:pull,push,delete', 'repository:other/app:pull,push,delete']);
  authorizeRegistryRequests(app, token);
});

afterAll(async () => {
  await app?.cleanup();
});

function blobFile(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(app.dataDir, 'storage', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** Two hours pass for everything recorded so far. */
function age(): void {
  sqlite(app, 'update blobs set seen_at = seen_at - 7200000');
}

async function runToEnd(body: Record<string, unknown> = { grace: '1h' }): Promise<any> {
  const started = await apiOk(app, 'POST', '/gc', { as: ADMIN, body, status: 202 });
  expect(started).toMatchObject({ status: 'running', actor: 'admin' });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = await apiOk(app, 'GET', `/gc/runs/${started.id}`, { as: ADMIN });
    if (run.status !== 'running') return run;
    if (Date.now() > deadline) throw new Error(`run ${started.id} still running after 30 s: ${JSON.stringify(run)}`);
    await sleep(50);
  }
}

describe('POST /api/v1/gc', () => {
  it('deletes exactly the unreferenced blobs past the grace period, bytes and metadata', async () => {
    const kept = await app.pushImage('team/app', 'v1');
    const gone = await app.pushImage('team/app', 'v2', { layers: [Buffer.from('only in v2')] });
    const loose = Buffer.from('pushed, never used');
    await app.pushBlob('team/app', loose);
    expect((await app.delete(`/v2/team/app/manifests/${gone.digest}`)).statusCode).toBe(202);
    const garbage = [gone.config, gone.layers[0]!, loose];

    // Inside the grace period: nothing goes.
    expect(await runToEnd()).toMatchObject({ status: 'succeeded', phase: 'done', blobsFreed: 0 });
    age();
    const fresh = Buffer.from('pushed just now');
    await app.pushBlob('team/app', fresh);
    const run = await runToEnd();
    expect(run).toMatchObject({ status: 'succeeded', phase: 'done', blobsExamined: 3, blobsMarked: 3, blobsFreed: 3, error: null, graceMs: 3_600_000, project: null });
    expect(run.bytesFreed).toBe(garbage.reduce((n, b) => n + b.length, 0));
    expect(run.finishedAt).not.toBeNull();
    // Webhooks hear of the run: a gc.finished event with its figures.
    // (written just after the run's record: look for up to 10 s)
    let announced;
    for (let i = 0; i < 200 && !announced; i++) {
      announced = (await app.app.metadata.events.recent(200)).find((e) => e.type === 'gc.finished' && (e.detail as { run?: string } | null)?.run === run.id);
      if (!announced) await sleep(50);
    }
    expect(announced?.detail).toMatchObject({ status: 'succeeded', startedBy: 'admin', blobsFreed: 3, bytesFreed: run.bytesFreed });
    for (const blob of garbage) {
      expect(existsSync(blobFile(sha256(blob)))).toBe(false);
      expect((await app.head(`/v2/team/app/blobs/${sha256(blob)}`)).statusCode).toBe(404);
    }
    for (const blob of [kept.config, ...kept.layers, fresh]) {
      expect(existsSync(blobFile(sha256(blob)))).toBe(true);
      const pulled = await app.get(`/v2/team/app/blobs/${sha256(blob)}`);
      expect(pulled.statusCode).toBe(200);
      expect(pulled.rawPayload.equals(blob)).toBe(true);
    }
    expect((await app.get('/v2/team/app/manifests/v1')).statusCode).toBe(200);
    // A manifest that names a collected blob is refused; pushing the blob again makes it whole.
    const again = await app.put(`/v2/team/app/manifests/${gone.digest}`, gone.manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    expect(again.statusCode).toBe(400);
    expect(again.json().errors[0].code).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('a push of a blob queued for deletion rescues it: present again, and the sweep leaves its bytes', async () => {
    const blob = Buffer.from('queued, then pushed again');
    await app.pushBlob('team/app', blob);
    age();
    const digest = sha256(blob);
    expect(await app.app.metadata.gc.mark(digest, new Date(Date.now() - 3_600_000))).toBe(true);
    expect((await app.head(`/v2/team/app/blobs/${digest}`)).statusCode).toBe(404);
    // A mount of it is refused (the client then uploads): reported absent, never present-then-lost.
    const mount = await app.post(`/v2/other/app/blobs/uploads/?mount=${digest}&from=team/app`);
    expect(mount.statusCode).toBe(202);
    await app.pushBlob('team/app', blob);
    expect((await app.head(`/v2/team/app/blobs/${digest}`)).statusCode).toBe(200);
    const run = await runToEnd();
    expect(run.status).toBe('succeeded');
    expect(existsSync(blobFile(digest))).toBe(true);
    expect((await app.get(`/v2/team/app/blobs/${digest}`)).rawPayload.equals(blob)).toBe(true);
  });

  it('limits candidates to a project with project', async () => {
    const mine = Buffer.from('loose in team');
    const theirs = Buffer.from('loose in other');
    await app.pushBlob('team/app', mine);
    await app.pushBlob('other/app', theirs);
    age();
    expect((await apiOk(app, 'GET', '/gc/preview?grace=1h&project=other', { as: ADMIN })).blobs.map((b: any) => b.digest)).toEqual([sha256(theirs)]);
    const run = await runToEnd({ grace: '1h', project: 'other' });
    expect(run).toMatchObject({ status: 'succeeded', project: 'other', blobsFreed: 1 });
    expect(existsSync(blobFile(sha256(theirs)))).toBe(false);
    expect(existsSync(blobFile(sha256(mine)))).toBe(true);
    // A run over every project then takes it (and what earlier tests left loose).
    expect((await runToEnd()).blobsFreed).toBeGreaterThanOrEqual(1);
    expect(existsSync(blobFile(sha256(mine)))).toBe(false);
  });

  it('removes abandoned uploads past uploads.expiry', async () => {
    const session = await app.post('/v2/team/app/blobs/uploads/');
    expect(session.statusCode).toBe(202);
    await sleep(2500);
    const run = await runToEnd();
    expect(run.uploadsRemoved).toBeGreaterThanOrEqual(1);
    expect((await app.get(session.headers.location as string)).statusCode).toBe(404);
  });

  it('runs one at a time (409 naming the run), lists runs newest first, audits and counts them', async () => {
    const holder = await app.app.metadata.gc.begin({ graceMs: 3_600_000, project: null, actor: 'elsewhere' }, 60_000);
    const busy = await api(app, 'POST', '/gc', { as: ADMIN, body: {} });
    expect(busy.statusCode).toBe(409);
    expect(busy.json().error.message).toContain(`run ${holder.run.id} is already running`);
    await app.app.metadata.gc.finish(holder.run.id, 'failed', { ...holder.run, phase: 'done' }, 'test');
    const runs = await apiOk(app, 'GET', '/gc/runs?limit=2', { as: ADMIN });
    expect(runs.items.map((r: any) => r.id)).toEqual([holder.run.id, String(Number(holder.run.id) - 1)]);
    expect((await apiOk(app, 'GET', `/gc/runs?before=${holder.run.id}&limit=1`, { as: ADMIN })).items[0].id).toBe(String(Number(holder.run.id) - 1));
    expect((await api(app, 'GET', '/gc/runs/999999', { as: ADMIN })).statusCode).toBe(404);

    await app.app.access.control.audit.flush();
    const audit = await apiOk(app, 'GET', '/audit?action=gc.run', { as: ADMIN });
    expect(audit.items.length).toBeGreaterThanOrEqual(4);
    expect(audit.items[0]).toMatchObject({ action: 'gc.run', result: 'success', actor: 'admin' });
    const metrics = (await app.get('/metrics')).payload;
    expect(metrics).toMatch(/stowage_gc_runs_total\{result="succeeded"\} [4-9]/);
    expect(metrics).toMatch(/stowage_gc_runs_total\{result="failed"\} 1/);
    expect(metrics).toMatch(/stowage_gc_bytes_freed_total [1-9]/);
    expect(metrics).toMatch(/stowage_gc_last_run_duration_seconds /);
  });

  it('is for administrators, with validated input', async () => {
    const alice = await addUser(app, 'alice');
    expect((await api(app, 'POST', '/gc', { as: alice, body: {} })).statusCode).toBe(403);
    expect((await api(app, 'GET', '/gc/runs', { as: alice })).statusCode).toBe(403);
    expect((await api(app, 'POST', '/gc', { body: {} })).statusCode).toBe(401);
    const short = await api(app, 'POST', '/gc', { as: ADMIN, body: { grace: '1s' } });
    expect(short.statusCode).toBe(400);
    expect(short.json().error.fields).toEqual([{ field: 'grace', message: 'at least 1m' }]);
    expect((await api(app, 'POST', '/gc', { as: ADMIN, body: { grace: 'soon' } })).statusCode).toBe(400);
    expect((await api(app, 'POST', '/gc', { as: ADMIN, body: { project: 'Not/A/Project' } })).json().error.fields[0].field).toBe('body.project');
    expect((await api(app, 'POST', '/gc', { as: ADMIN, body: { force: true } })).statusCode).toBe(400);
    expect((await api(app, 'GET', '/gc/runs?limit=0', { as: ADMIN })).statusCode).toBe(400);
  });
});

describe('OpenAPI', () => {
  it('documents the garbage collection endpoints', async () => {
    const doc = (await app.get('/api/v1/openapi.json')).json();
    expect(doc.paths['/api/v1/gc'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('grace');
    expect(doc.paths).toHaveProperty(['/api/v1/gc/runs']);
    expect(doc.paths).toHaveProperty(['/api/v1/gc/runs/{id}']);
    expect(doc.paths['/api/v1/gc/preview'].get.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['grace', 'project']));
  });
});

describe('shutdown', () => {
  it('ends a run in progress, recorded as stopped with its lease released', async () => {
    const other = await createAuthApp();
    try {
      // Many candidates, so that the run is still marking when the app closes.
      const garbage = Array.from({ length: 3000 }, (_, i) => Buffer.from(`garbage ${i}`));
      const now = Date.now() - 7_200_000;
      sqlite(other, "insert into repositories (name, created_at) values ('junk/x', 0)");
      for (let i = 0; i < garbage.length; i += 500) {
        const values = garbage.slice(i, i + 500).map((b) => `('${sha256(b)}', ${b.length}, ${now}, ${now})`);
        sqlite(other, `insert into blobs (digest, size, created_at, seen_at) values ${values.join(',')}`);
      }
      const run = await apiOk(other, 'POST', '/gc', { as: ADMIN, body: { grace: '1h' }, status: 202 });
      await other.app.access.control.garbage.stop();
      const stopped = await other.app.metadata.gc.run(run.id);
      expect(stopped).toMatchObject({ status: 'failed', error: expect.stringContaining('stopped') });
      expect(stopped!.blobsMarked).toBeLessThan(garbage.length);
      expect((await other.app.metadata.gc.begin({ graceMs: 3_600_000, project: null, actor: 'next' }, 15_000)).started).toBe(true);
    } finally {
      await other.cleanup();
    }
  });
});
