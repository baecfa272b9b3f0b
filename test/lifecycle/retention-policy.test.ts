// The retention planner, rule by rule: keep rules combine with "or", immutable tags and index
// members stay, referrers follow their subject, untagged manifests go after untaggedAfter
// unless a tag's history names them inside the window (each protection can be switched off).
import { describe, expect, it } from 'vitest';
import { planRepository, previousSlot, nextSlot, retentionInput, type RetentionPolicy } from '../../src/control/retention-policy.js';
import type { RetentionManifest } from '../../src/metadata/housekeeping-store.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

function m(name: string, ageDays: number, extra: Partial<RetentionManifest> = {}): RetentionManifest {
  return { digest: `sha256:${name}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', pushedAt: new Date(NOW - ageDays * DAY), tags: [], subject: null, inIndex: false, pulls: 0, lastPulledAt: null, ...extra };
}

function plan(input: unknown, manifests: RetentionManifest[], options: { immutable?: Record<string, string>; history?: string[] } = {}) {
  const policy: RetentionPolicy = retentionInput.parse(input);
  const sorted = [...manifests].sort((a, b) => b.pushedAt.getTime() - a.pushedAt.getTime());
  const result = planRepository(policy, {
    repository: 'team/app',
    manifests: sorted,
    immutable: (tag) => options.immutable?.[tag] ?? null,
    inHistoryWindow: new Set((options.history ?? []).map((n) => `sha256:${n}`)),
    historyWindowStart: new Date(NOW - 14 * DAY),
    now: NOW,
  });
  const names = (list: { digest: string }[]) => list.map((d) => d.digest.slice(7)).sort();
  const why = Object.fromEntries([...result.keep, ...result.remove].map((d) => [d.digest.slice(7), d.reason]));
  return { removed: names(result.remove), kept: names(result.keep), why };
}

describe('retention policy input', () => {
  it('needs at least one rule and validates each', () => {
    expect(retentionInput.safeParse({}).success).toBe(false);
    expect(retentionInput.safeParse({ keepMostRecent: 0 }).success).toBe(false);
    expect(retentionInput.safeParse({ keepTags: ['bad tag'] }).success).toBe(false);
    expect(retentionInput.safeParse({ untaggedAfter: '10m' }).success).toBe(false); // at least 1h
    expect(retentionInput.safeParse({ untaggedAfter: '14d', schedule: 'every day' }).success).toBe(false);
    expect(retentionInput.safeParse({ untaggedAfter: '14d', surprise: 1 }).success).toBe(false);
    expect(retentionInput.parse({ keepTags: ['v*'], keepPulledWithin: '30d', schedule: '0 3 * * *' })).toMatchObject({ keepPulledWithin: 30 * DAY, schedule: '0 3 * * *' });
  });
});

describe('retention planning', () => {
  const images = () => [m('a', 1, { tags: ['latest'] }), m('b', 2, { tags: ['v2'] }), m('c', 3, { tags: ['v1'] }), m('d', 40, { tags: ['old'] }), m('e', 50, { tags: ['dev-1'] })];

  it('keeps the N most recently pushed tagged images of the repository', () => {
    const result = plan({ keepMostRecent: 2 }, images());
    expect(result.kept).toEqual(['a', 'b']);
    expect(result.removed).toEqual(['c', 'd', 'e']);
    expect(result.why.b).toBe('among the 2 most recently pushed tagged images (#2)');
    expect(result.why.c).toBe('tagged, and no keep rule matches');
  });

  it('keeps tags matching patterns', () => {
    const result = plan({ keepTags: ['v*', 'late?t'] }, images());
    expect(result.kept).toEqual(['a', 'b', 'c']);
    expect(result.why.c).toBe('tag v1 matches v*');
  });

  it('keeps what was pulled or pushed recently, and combines rules with or', () => {
    const pulled = images().map((x) => (x.digest === 'sha256:e' ? { ...x, lastPulledAt: new Date(NOW - 5 * DAY) } : x));
    expect(plan({ keepPulledWithin: '7d' }, pulled).kept).toEqual(['e']);
    expect(plan({ keepPushedWithin: '7d' }, images()).kept).toEqual(['a', 'b', 'c']);
    expect(plan({ keepPushedWithin: '2d', keepTags: ['old'], keepPulledWithin: '7d' }, pulled).kept).toEqual(['a', 'd', 'e']);
  });

  it('never removes a manifest with an immutable tag, and says why', () => {
    const result = plan({ keepMostRecent: 1 }, images(), { immutable: { v1: '#3 team/*:v*' } });
    expect(result.kept).toEqual(['a', 'c']);
    expect(result.why.c).toBe('tag v1 is immutable (rule #3 team/*:v*)');
  });

  it('leaves tagged images alone without keep rules, and untagged ones without untaggedAfter', () => {
    expect(plan({ untaggedAfter: '1d' }, images()).removed).toEqual([]);
    expect(plan({ keepMostRecent: 10 }, [m('u', 100)]).kept).toEqual(['u']);
  });

  it('removes untagged manifests after untaggedAfter, except those in a tag history inside the window (unless configured)', () => {
    const manifests = [m('fresh', 1), m('old', 30), m('rolled', 30), m('tagged', 30, { tags: ['x'] })];
    const result = plan({ untaggedAfter: '7d' }, manifests, { history: ['rolled'] });
    expect(result.removed).toEqual(['old']);
    expect(result.why.fresh).toBe('untagged, pushed less than 7d ago');
    expect(result.why.rolled).toMatch(/^named by a tag's history inside the history window/);
    expect(result.why.old).toBe('untagged, pushed more than 7d ago');
    expect(plan({ untaggedAfter: '7d', untaggedInHistoryWindow: true }, manifests, { history: ['rolled'] }).removed).toEqual(['old', 'rolled']);
  });

  it('keeps manifests an index references, and referrers of kept manifests (unless configured)', () => {
    const manifests = [m('index', 30, { tags: ['multi'] }), m('amd64', 30, { inIndex: true }), m('sig', 30, { subject: 'sha256:index' }), m('gone', 30, { tags: ['x'] }), m('sbom', 30, { subject: 'sha256:gone' }), m('sbom2', 30, { subject: 'sha256:sbom' })];
    const result = plan({ keepTags: ['multi'], untaggedAfter: '7d' }, manifests);
    expect(result.kept).toEqual(['amd64', 'index', 'sig']);
    expect(result.why.amd64).toBe('referenced by an index of the repository');
    expect(result.why.sig).toBe('referrer of kept manifest sha256:index');
    expect(result.removed).toEqual(['gone', 'sbom', 'sbom2']);
    expect(result.why.sbom).toBe('its subject sha256:gone is removed');
    expect(result.why.sbom2).toBe('its subject sha256:sbom is removed');
    expect(plan({ keepTags: ['multi'], untaggedAfter: '7d', untaggedReferrers: true }, manifests).removed).toEqual(['gone', 'sbom', 'sbom2', 'sig']);
  });
});

describe('schedules', () => {
  it('name the previous and next UTC times of a cron expression', () => {
    const at = Date.UTC(2026, 0, 1, 3, 30);
    expect(previousSlot('0 3 * * *', at).toISOString()).toBe('2026-01-01T03:00:00.000Z');
    expect(previousSlot('0 3 * * *', Date.UTC(2026, 0, 1, 3, 0)).toISOString()).toBe('2026-01-01T03:00:00.000Z');
    expect(nextSlot('0 3 * * *', at).toISOString()).toBe('2026-01-02T03:00:00.000Z');
  });
});
