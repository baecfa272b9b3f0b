import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { duration } from '../config/primitives.js';
import { cronExpression } from '../config/retention-schema.js';
import type { RetentionManifest } from '../metadata/housekeeping-store.js';
import { globMatches } from '../registry/immutability.js';

const DAY = 86_400_000;
const age = duration.refine((ms) => ms >= 3_600_000 && ms <= 36_500 * DAY, 'between 1h and 36500d');

/**
 * A project's retention policy, as owners write it (PUT /projects/{name}/retention). Keep rules
 * combine with "or": a tagged image is kept when any of them keeps it; with no keep rule, tagged
 * images are out of scope. Untagged manifests go only with `untaggedAfter`.
 */
export const retentionInput = z
  .object({
    /** Keep the N most recently pushed tagged images of each repository. */
    keepMostRecent: z.number().int().min(1).max(100_000).optional(),
    /** Keep images with a tag matching one of these globs (`*`, `?`). */
    keepTags: z.array(z.string().min(1).max(128).regex(/^[A-Za-z0-9_.*?-]+$/, 'a tag glob: letters, digits, _ . - and the wildcards * ?')).max(100).optional(),
    /** Keep anything pulled (by tag or digest) within this long. */
    keepPulledWithin: age.optional(),
    /** Keep anything pushed within this long. */
    keepPushedWithin: age.optional(),
    /** Remove untagged manifests pushed longer ago than this. */
    untaggedAfter: age.optional(),
    /** Also remove untagged manifests that a tag's history names inside the history window (rollback to them then fails). */
    untaggedInHistoryWindow: z.boolean().optional(),
    /** Also remove untagged referrers (signatures, SBOMs) of kept manifests. */
    untaggedReferrers: z.boolean().optional(),
    /** When scheduled runs happen (UTC cron); null or absent: the server's `retention.schedule`. */
    schedule: cronExpression.nullable().optional(),
  })
  .strict()
  .refine((p) => p.keepMostRecent !== undefined || (p.keepTags?.length ?? 0) > 0 || p.keepPulledWithin !== undefined || p.keepPushedWithin !== undefined || p.untaggedAfter !== undefined, {
    message: 'a policy needs at least one rule: keepMostRecent, keepTags, keepPulledWithin, keepPushedWithin or untaggedAfter',
  });

export type RetentionPolicy = z.output<typeof retentionInput>;

export interface RetentionDecision {
  repository: string;
  digest: string;
  tags: string[];
  pushedAt: Date;
  lastPulledAt: Date | null;
  reason: string;
}

export interface RepositoryPlan {
  remove: RetentionDecision[];
  keep: RetentionDecision[];
}

interface Decision {
  keep: boolean;
  reason: string;
}

export interface PlanContext {
  repository: string;
  manifests: RetentionManifest[];
  /** The immutable tag rule that covers a tag, or null. */
  immutable(tag: string): string | null;
  /** Digests a tag's history names inside the project's history window. */
  inHistoryWindow: Set<string>;
  historyWindowStart: Date;
  now: number;
}

/**
 * Decides, for one repository, which manifests a retention run removes and why each one stays.
 * Pure: the dry run and the real run make the same plan from the same facts.
 *
 * Order of the checks (the first that applies decides): a manifest an index of the repository
 * references stays with its index (a later run sees it untagged once the index is gone); an
 * immutable tag keeps its manifest; a referrer (a manifest with a subject in the repository)
 * follows its subject; then the keep rules ("or"); then tagged images without a keep rule match
 * go, untagged ones go after `untaggedAfter` unless a tag's history names them inside the window.
 */
export function planRepository(policy: RetentionPolicy, context: PlanContext): RepositoryPlan {
  const { manifests, now } = context;
  const hasKeepRules = policy.keepMostRecent !== undefined || (policy.keepTags?.length ?? 0) > 0 || policy.keepPulledWithin !== undefined || policy.keepPushedWithin !== undefined;
  const present = new Set(manifests.map((m) => m.digest));
  const isReferrer = (m: RetentionManifest) => m.subject !== null && present.has(m.subject) && m.subject !== m.digest;
  // Rank of tagged images by push time, newest first (manifests arrive sorted that way).
  const rank = new Map(manifests.filter((m) => m.tags.length > 0 && !m.inIndex && !isReferrer(m)).map((m, i) => [m.digest, i]));

  const immutableTag = (m: RetentionManifest): Decision | null => {
    for (const tag of m.tags) {
      const rule = context.immutable(tag);
      if (rule !== null) return { keep: true, reason: `tag ${tag} is immutable (rule ${rule})` };
    }
    return null;
  };
  const decide = (m: RetentionManifest): Decision => {
    if (m.inIndex) return { keep: true, reason: 'referenced by an index of the repository' };
    const immutable = immutableTag(m);
    if (immutable) return immutable;
    const keptBy = keepRule(policy, m, rank.get(m.digest), now);
    if (keptBy) return { keep: true, reason: keptBy };
    if (m.tags.length > 0) return hasKeepRules ? { keep: false, reason: 'tagged, and no keep rule matches' } : { keep: true, reason: 'tagged (the policy has no keep rule for tagged images)' };
    if (policy.untaggedAfter === undefined) return { keep: true, reason: 'untagged (the policy has no untaggedAfter rule)' };
    if (now - m.pushedAt.getTime() < policy.untaggedAfter) return { keep: true, reason: `untagged, pushed less than ${days(policy.untaggedAfter)} ago` };
    if (!policy.untaggedInHistoryWindow && context.inHistoryWindow.has(m.digest)) {
      return { keep: true, reason: `named by a tag's history inside the history window (since ${context.historyWindowStart.toISOString()})` };
    }
    return { keep: false, reason: `untagged, pushed more than ${days(policy.untaggedAfter)} ago` };
  };

  const decisions = new Map<string, Decision>();
  // A referrer follows its subject (chains resolved from the root down): it goes with a removed
  // subject and stays with a kept one, unless `untaggedReferrers` lets the untagged rules decide.
  const resolve = (m: RetentionManifest, depth = 0): Decision => {
    const known = decisions.get(m.digest);
    if (known) return known;
    let decision: Decision;
    if (!isReferrer(m) || depth > 50) decision = decide(m);
    else {
      const subject = resolve(manifests.find((s) => s.digest === m.subject)!, depth + 1);
      const own = decide(m);
      if (m.inIndex || immutableTag(m)) decision = own;
      else if (!subject.keep) decision = { keep: false, reason: `its subject ${m.subject} is removed` };
      else if (policy.untaggedReferrers && m.tags.length === 0 && !own.keep) decision = own;
      else decision = { keep: true, reason: `referrer of kept manifest ${m.subject}` };
    }
    decisions.set(m.digest, decision);
    return decision;
  };

  const plan: RepositoryPlan = { remove: [], keep: [] };
  for (const m of manifests) {
    const d = resolve(m);
    const entry = { repository: context.repository, digest: m.digest, tags: m.tags, pushedAt: m.pushedAt, lastPulledAt: m.lastPulledAt, reason: d.reason };
    (d.keep ? plan.keep : plan.remove).push(entry);
  }
  return plan;
}

/** The keep rule that keeps `m`, described; null when none does. */
function keepRule(policy: RetentionPolicy, m: RetentionManifest, rank: number | undefined, now: number): string | null {
  if (policy.keepMostRecent !== undefined && rank !== undefined && rank < policy.keepMostRecent) {
    return `among the ${policy.keepMostRecent} most recently pushed tagged images (#${rank + 1})`;
  }
  for (const pattern of policy.keepTags ?? []) {
    const tag = m.tags.find((t) => globMatches(pattern, t));
    if (tag) return `tag ${tag} matches ${pattern}`;
  }
  if (policy.keepPulledWithin !== undefined && m.lastPulledAt && now - m.lastPulledAt.getTime() < policy.keepPulledWithin) {
    return `pulled within ${days(policy.keepPulledWithin)} (${m.lastPulledAt.toISOString()})`;
  }
  if (policy.keepPushedWithin !== undefined && now - m.pushedAt.getTime() < policy.keepPushedWithin) {
    return `pushed within ${days(policy.keepPushedWithin)} (${m.pushedAt.toISOString()})`;
  }
  return null;
}

function days(ms: number): string {
  return ms % DAY === 0 ? `${ms / DAY}d` : ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : `${Math.round(ms / 60_000)}m`;
}

/** The latest time at or before `now` that `schedule` names (UTC). */
export function previousSlot(schedule: string, now: number): Date {
  return CronExpressionParser.parse(schedule, { currentDate: new Date(now + 1), tz: 'UTC' }).prev().toDate();
}

/** The next time after `now` that `schedule` names (UTC). */
export function nextSlot(schedule: string, now: number): Date {
  return CronExpressionParser.parse(schedule, { currentDate: new Date(now), tz: 'UTC' }).next().toDate();
}
