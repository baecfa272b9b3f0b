// Retention through the management API: policies set by owners, dry run == real run, immutable
// tags kept with the reason, untagged manifests and the history window, audit entries, errors,
// and scheduled runs (a fake clock; two schedulers: one run per slot).
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RetentionScheduler } from '../../src/control/retention-scheduler.js';
import { ADMIN, addProject, addUser, api, apiOk, authorizeRegistryRequests, createAuthApp, sqlite, tokenFor, type Creds } from '../support/auth.js';
import type { TestApp } from '../support/http-app.js';

let app: TestApp;
let owner: Creds;
let dev: Creds;
const DAY = 86_400_000;

beforeAll(async () => {
  app = await createAuthApp();
  owner = await addUser(app, 'owner');
  dev = await addUser(app, 'dev');
  await addProject(app, 'team', { members: { owner: 'owner', dev: 'maintainer' } });
  authorizeRegistryRequests(app, await tokenFor(app, ADMIN, ['repository:team/app:pull,push,delete', 'repository:team/lib:pull,push,delete']));
});

afterAll(async () => app?.cleanup());

/** Makes a manifest look pushed `days` ago. */
function age(digest: string, days: number): void {
  sqlite(app, 'update manifests set created_at = ? where digest = ?', Date.now() - days * DAY, digest);
}

const digests = (list: { repository: string; digest: string }[]) => list.map((d) => `${d.repository}@${d.digest}`).sort();

describe('retention policies', () => {
  it('are read by members and set or removed by owners, with validated input', async () => {
    expect(await apiOk(app, 'GET', '/projects/team/retention', { as: dev })).toEqual({ project: 'team', policy: null, schedule: null, nextRunAt: null, lastRunAt: null });
    expect((await api(app, 'PUT', '/projects/team/retention', { as: dev, body: { keepMostRecent: 1 } })).statusCode).toBe(403);
    const bad = await api(app, 'PUT', '/projects/team/retention', { as: owner, body: { keepMostRecent: 1, schedule: 'daily' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.fields[0]).toMatchObject({ field: 'schedule' });
    expect((await api(app, 'PUT', '/projects/team/retention', { as: owner, body: {} })).json().error.message).toContain('a policy needs at least one rule');
    expect((await api(app, 'POST', '/projects/team/retention/run', { as: owner })).statusCode).toBe(409); // no policy yet
    expect((await api(app, 'PUT', '/projects/nope/retention', { as: ADMIN, body: { keepMostRecent: 1 } })).statusCode).toBe(404);
    const set = await apiOk(app, 'PUT', '/projects/team/retention', { as: owner, body: { keepMostRecent: 1, schedule: '0 3 * * *' }, status: 200 });
    expect(set).toMatchObject({ policy: { keepMostRecent: 1, schedule: '0 3 * * *' }, schedule: '0 3 * * *' });
    expect(set.nextRunAt).toMatch(/T03:00:00.000Z$/);
    await apiOk(app, 'DELETE', '/projects/team/retention', { as: owner });
    expect((await apiOk(app, 'GET', '/projects/team/retention', { as: dev })).policy).toBeNull();
  });

  it('run as a dry run that lists exactly what the real run then removes, keeping immutable tags with the reason', async () => {
    const images: Record<string, string> = {};
    for (const [repository, tag, days] of [
      ['team/app', 'v1', 30],
      ['team/app', 'v2', 20],
      ['team/app', 'latest', 1],
      ['team/app', 'keep-me', 40],
      ['team/lib', 'a', 10],
      ['team/lib', 'b', 5],
    ] as const) {
      images[`${repository}:${tag}`] = (await app.pushImage(repository, tag)).digest;
      age(images[`${repository}:${tag}`]!, days);
    }
    // An untagged manifest pushed long ago, and one whose tag was deleted (named by the history).
    const untagged = (await app.pushImage('team/app', 'tmp')).digest;
    expect((await app.delete('/v2/team/app/manifests/tmp')).statusCode).toBe(202);
    sqlite(app, 'delete from tag_history where previous_digest = ? or digest = ?', untagged, untagged);
    age(untagged, 30);
    const rolled = (await app.pushImage('team/app', 'moved')).digest;
    expect((await app.delete('/v2/team/app/manifests/moved')).statusCode).toBe(202);
    age(rolled, 30);
    await apiOk(app, 'POST', '/projects/team/immutable-tags', { as: owner, body: { tag: 'v1' } });
    await apiOk(app, 'PUT', '/projects/team/retention', { as: owner, body: { keepMostRecent: 1, keepTags: ['keep-*'], untaggedAfter: '7d' }, status: 200 });

    expect((await api(app, 'POST', '/projects/team/retention/run?dryRun=true', { as: dev })).statusCode).toBe(403);
    const dry = await apiOk(app, 'POST', '/projects/team/retention/run?dryRun=true', { as: owner, status: 200 });
    expect(dry.dryRun).toBe(true);
    const expected = [`team/app@${images['team/app:v2']}`, `team/app@${untagged}`, `team/lib@${images['team/lib:a']}`].sort();
    expect(digests(dry.removed)).toEqual(expected);
    const reasons = Object.fromEntries([...dry.removed, ...dry.kept].map((d: { digest: string; reason: string }) => [d.digest, d.reason]));
    expect(reasons[images['team/app:v1']!]).toMatch(/^tag v1 is immutable \(rule #\d+ team\/\*:v1\)$/);
    expect(reasons[images['team/app:keep-me']!]).toBe('tag keep-me matches keep-*');
    expect(reasons[images['team/app:latest']!]).toBe('among the 1 most recently pushed tagged images (#1)');
    expect(reasons[images['team/app:v2']!]).toBe('tagged, and no keep rule matches');
    expect(reasons[rolled]).toMatch(/^named by a tag's history inside the history window/);
    expect(reasons[untagged]).toBe('untagged, pushed more than 7d ago');
    // The dry run removed nothing.
    expect((await app.get(`/v2/team/app/manifests/${untagged}`, { accept: 'application/vnd.oci.image.manifest.v1+json' })).statusCode).toBe(200);

    // The removals do not each wait out the scale-out nodes' read caches: the run waits once.
    const settle = vi.spyOn(app.app.metadata, 'settle');
    const remove = vi.spyOn(app.app.metadata.manifests, 'delete');
    const real = await apiOk(app, 'POST', '/projects/team/retention/run', { as: owner, status: 200 });
    expect(settle).toHaveBeenCalledTimes(1);
    expect(remove.mock.calls.map((call) => call[2]?.settleLater)).toEqual([true, true, true]);
    settle.mockRestore();
    remove.mockRestore();
    expect(real.dryRun).toBe(false);
    expect(digests(real.removed)).toEqual(expected);
    expect(real.skipped).toEqual([]);
    expect(await app.tags('team/app')).toEqual(['keep-me', 'latest', 'v1']);
    expect(await app.tags('team/lib')).toEqual(['b']);
    expect((await app.get(`/v2/team/app/manifests/${untagged}`, { accept: 'application/vnd.oci.image.manifest.v1+json' })).statusCode).toBe(404);

    const deletions = await apiOk(app, 'GET', '/audit?action=retention.delete', { as: ADMIN });
    expect(deletions.items.map((e: { target: string }) => e.target).sort()).toEqual(expected);
    const runs = await apiOk(app, 'GET', '/audit?action=retention.run', { as: ADMIN });
    expect(runs.items.map((e: { detail: { dryRun: boolean; removed: number } }) => e.detail)).toEqual([
      expect.objectContaining({ dryRun: false, removed: 3 }),
      expect.objectContaining({ dryRun: true, removed: 3 }),
    ]);
    // A second run finds nothing more to remove.
    expect((await apiOk(app, 'POST', '/projects/team/retention/run', { as: owner, status: 200 })).removed).toEqual([]);
    // Each real run (not the dry run) is announced to webhooks as retention.finished.
    const finished = (await app.app.metadata.events.recent(100, { project: 'team' })).filter((e) => e.type === 'retention.finished');
    expect(finished.map((e) => e.detail)).toEqual([
      expect.objectContaining({ removed: 0, skipped: 0 }),
      expect.objectContaining({ repositories: 2, removed: 3, skipped: 0 }),
    ]);
  });

  it('keep what was pulled recently (the pull counts of this process are written before planning)', async () => {
    const pulled = (await app.pushImage('team/lib', 'pulled')).digest;
    const idle = (await app.pushImage('team/lib', 'idle')).digest;
    age(pulled, 3);
    age(idle, 2);
    expect((await app.get('/v2/team/lib/manifests/pulled', { accept: 'application/vnd.oci.image.manifest.v1+json' })).statusCode).toBe(200);
    await apiOk(app, 'PUT', '/projects/team/retention', { as: owner, body: { keepPulledWithin: '1d' }, status: 200 });
    const dry = await apiOk(app, 'POST', '/projects/team/retention/run?dryRun=true', { as: owner, status: 200 });
    const reasons = Object.fromEntries([...dry.removed, ...dry.kept].map((d: { digest: string; reason: string }) => [d.digest, d.reason]));
    expect(reasons[pulled]).toMatch(/^pulled within 1d \(/);
    expect(reasons[idle]).toBe('tagged, and no keep rule matches');
  });

  it('run on schedule: once per slot across schedulers, not before the first slot after the policy was set', async () => {
    const control = app.app.access.control;
    await apiOk(app, 'PUT', '/projects/team/retention', { as: owner, body: { keepMostRecent: 1, schedule: '0 3 * * *' }, status: 200 });
    const logger = pino({ level: 'silent' });
    let now = Date.now();
    const schedulers = [0, 1].map(() => new RetentionScheduler(app.app.metadata, control.retention, logger, () => now));
    expect(await schedulers[0]!.tick()).toEqual([]); // set just now: the last 03:00 is before it
    now += 2 * DAY; // two 03:00 slots passed: one catch-up run
    const ran = await Promise.all(schedulers.map((s) => s.tick()));
    expect(ran.flat()).toEqual(['team']);
    expect(await schedulers[1]!.tick()).toEqual([]);
    expect(await app.tags('team/app')).toEqual(['latest', 'v1']); // keep-me went; v1 is immutable
    expect(await app.tags('team/lib')).toEqual(['idle']); // the newest of team/lib
    const view = await apiOk(app, 'GET', '/projects/team/retention', { as: dev });
    expect(Date.parse(view.lastRunAt)).toBeGreaterThan(Date.now());
    now += DAY;
    expect(await schedulers[1]!.tick()).toEqual(['team']);
    const runs = await apiOk(app, 'GET', '/audit?action=retention.run&actor=retention', { as: ADMIN });
    expect(runs.items).toHaveLength(2);
  });
});
