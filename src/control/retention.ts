import type { Actor } from '../auth/principal.js';
import type { EventRecorder } from '../events/recorder.js';
import type { AuthService } from '../auth/service.js';
import { nodeName, writeContextOf } from '../events/context.js';
import type { RetentionManifest, StoredRetentionPolicy } from '../metadata/housekeeping-store.js';
import { ImmutableTagError, ManifestInUseError, type MetadataStore } from '../metadata/metadata-store.js';
import { tagGuardFor } from '../registry/immutability.js';
import { isRepositoryName } from '../registry/names.js';
import type { AuditLog } from './audit.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess } from './guard.js';
import type { PullRecorder } from './pull-stats.js';
import { nextSlot, planRepository, retentionInput, type RetentionDecision, type RetentionPolicy } from './retention-policy.js';
import { defaultHistoryWindowMs } from './tag-history.js';
import { parse, projectName } from './validation.js';

export interface RetentionView {
  project: string;
  /** The policy as its owners set it; null: none (nothing is ever removed). */
  policy: RetentionPolicy | null;
  /** The schedule in force: the policy's own, else the server's `retention.schedule`; null: on demand only. */
  schedule: string | null;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
}

export interface RetentionReport {
  project: string;
  dryRun: boolean;
  startedAt: Date;
  finishedAt: Date;
  repositories: number;
  /** What goes (dry run) or went, with the reason. */
  removed: RetentionDecision[];
  /** What stays, with the reason (immutable tags, keep rules, protections). */
  kept: RetentionDecision[];
  /** Planned removals that the registry refused when it came to them (a change since the plan). */
  skipped: (RetentionDecision & { skipped: string })[];
}

export interface RetentionProgress {
  repository: string;
  repositoriesDone: number;
  repositories: number;
  removed: number;
}

export interface RetentionOptions {
  /** The server's `retention.schedule` (policies without their own). */
  defaultSchedule?: string | null;
  historyWindowMs?: number;
  now?: () => number;
  node?: string;
  /** Where a finished run (not a dry run) is reported as a `retention.finished` event. */
  events?: EventRecorder;
}

/**
 * Retention policies of projects: read by anyone who sees the project, set and run by its owners
 * and system administrators. A run plans each repository from the metadata (planRepository) and,
 * unless it is a dry run, removes the planned manifests through the same metadata call as a
 * manifest DELETE (immutable tags and index references are checked again in its transaction;
 * a refusal there is reported as skipped). Tags go with their manifest; blobs are left to garbage
 * collection. Every removal is audit-logged (`retention.delete`), and each run (`retention.run`).
 */
export class RetentionService {
  private readonly now: () => number;
  private readonly node: string;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    private readonly pulls: PullRecorder | undefined,
    private readonly options: RetentionOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.node = options.node ?? nodeName();
  }

  async show(actor: Actor, project: string): Promise<RetentionView> {
    parse(projectName, project);
    if (!(await this.auth.authorizer.allows(actor.principal, { type: 'project', name: project, actions: ['read'] }))) throw notFound(`project ${project}`);
    if (!(await this.metadata.control.projects.get(project))) throw notFound(`project ${project}`);
    return this.view(project, await this.metadata.retention.get(project));
  }

  async set(actor: Actor, project: string, input: unknown): Promise<RetentionView> {
    const parsed = retentionInput.safeParse(input ?? {});
    if (!parsed.success) throw ControlError.fromZod(parsed.error);
    await this.requireOwner(actor, project);
    const { schedule, ...rules } = input as Record<string, unknown>;
    if (!(await this.metadata.retention.set(project, rules, (schedule as string | null | undefined) ?? null))) throw notFound(`project ${project}`);
    this.audit.record(actor, { action: 'project.retention', result: 'success', target: project, project, detail: { ...(input as object) } });
    return this.show(actor, project);
  }

  async remove(actor: Actor, project: string): Promise<void> {
    await this.requireOwner(actor, project);
    if (!(await this.metadata.retention.delete(project))) throw notFound(`retention policy of project ${project}`);
    this.audit.record(actor, { action: 'project.retention', result: 'success', target: project, project, detail: { removed: true } });
  }

  /**
   * A repository's manifests as retention sees them (anyone who may pull): tags, push time, index
   * membership, subject, pulls and last pull — also of untagged manifests.
   */
  async manifests(actor: Actor, repository: string): Promise<{ repository: string; items: RetentionManifest[] }> {
    if (!isRepositoryName(repository)) throw new ControlError('invalid', 'invalid repository name', [{ field: 'repository', message: 'not a repository name' }]);
    if (!(await this.auth.authorizer.allows(actor.principal, { type: 'repository', name: repository, actions: ['pull'] }))) {
      if (actor.principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
      throw notFound(`repository ${repository}`);
    }
    await this.pulls?.flush();
    const items = await this.metadata.retention.manifests(repository);
    if (items.length === 0 && !(await this.metadata.repositories.exists(repository))) throw notFound(`repository ${repository}`);
    return { repository, items };
  }

  /** Runs the project's policy now (owners, admins); a dry run removes nothing and reports the same plan. */
  async run(actor: Actor, project: string, options: { dryRun: boolean }, onProgress?: (progress: RetentionProgress) => void): Promise<RetentionReport> {
    await this.requireOwner(actor, project);
    const stored = await this.metadata.retention.get(project);
    if (!stored) throw new ControlError('conflict', `project ${project} has no retention policy; set one with PUT /api/v1/projects/${project}/retention`);
    return this.execute(actor, stored, options.dryRun, onProgress);
  }

  /** A scheduled run (the background-jobs process), as the system. */
  async runScheduled(actor: Actor, stored: StoredRetentionPolicy, onProgress?: (progress: RetentionProgress) => void): Promise<RetentionReport> {
    return this.execute(actor, stored, false, onProgress);
  }

  /** The server's `retention.schedule`, for policies without their own. */
  useDefaultSchedule(schedule: string | null): void {
    this.options.defaultSchedule = schedule;
  }

  /** The schedule in force for a policy. */
  scheduleOf(stored: StoredRetentionPolicy): string | null {
    return stored.schedule ?? this.options.defaultSchedule ?? null;
  }

  private async execute(actor: Actor, stored: StoredRetentionPolicy, dryRun: boolean, onProgress?: (progress: RetentionProgress) => void): Promise<RetentionReport> {
    const project = stored.project;
    const policy = retentionInput.parse(stored.rules);
    const startedAt = new Date(this.now());
    // Pulls counted in this process so far count for "pulled within".
    await this.pulls?.flush();
    const windowMs = (await this.metadata.lifecycle.get(project))?.historyWindowMs ?? this.options.historyWindowMs ?? defaultHistoryWindowMs;
    const windowStart = new Date(startedAt.getTime() - windowMs);
    const repositories = await this.metadata.retention.repositories(project);
    const report: RetentionReport = { project, dryRun, startedAt, finishedAt: startedAt, repositories: repositories.length, removed: [], kept: [], skipped: [] };
    const context = writeContextOf(actor, this.node);
    for (const [index, repository] of repositories.entries()) {
      const guard = await tagGuardFor(this.metadata, repository);
      const plan = planRepository(policy, {
        repository,
        manifests: await this.metadata.retention.manifests(repository),
        immutable: (tag) => guard?.immutable(tag) ?? null,
        inHistoryWindow: await this.metadata.retention.historyDigests(repository, windowStart),
        historyWindowStart: windowStart,
        now: startedAt.getTime(),
      });
      report.kept.push(...plan.keep);
      for (const decision of plan.remove) {
        if (dryRun) {
          report.removed.push(decision);
          continue;
        }
        const skipped = await this.removeOne(decision, guard, context);
        if (skipped) report.skipped.push({ ...decision, skipped });
        else {
          report.removed.push(decision);
          this.audit.record(actor, { action: 'retention.delete', result: 'success', target: `${repository}@${decision.digest}`, project, detail: { tags: decision.tags, reason: decision.reason } });
        }
      }
      onProgress?.({ repository, repositoriesDone: index + 1, repositories: repositories.length, removed: report.removed.length });
    }
    // Each removal skipped waiting out the nodes' read caches; one wait covers them all.
    if (report.removed.length > 0 && !dryRun) await this.metadata.settle();
    report.finishedAt = new Date(this.now());
    this.audit.record(actor, {
      action: 'retention.run',
      result: 'success',
      target: project,
      project,
      detail: { dryRun, repositories: repositories.length, removed: report.removed.length, kept: report.kept.length, skipped: report.skipped.length },
    });
    if (!dryRun) {
      await this.options.events?.emit({
        type: 'retention.finished',
        actor,
        project,
        detail: { repositories: repositories.length, removed: report.removed.length, kept: report.kept.length, skipped: report.skipped.length, seconds: (report.finishedAt.getTime() - startedAt.getTime()) / 1000 },
      });
    }
    return report;
  }

  /** Removes a planned manifest; resolves to why it was skipped, or null when it went. */
  private async removeOne(decision: RetentionDecision, guard: Awaited<ReturnType<typeof tagGuardFor>>, context: ReturnType<typeof writeContextOf>): Promise<string | null> {
    try {
      const removed = await this.metadata.manifests.delete(decision.repository, decision.digest, { ...(guard ? { immutable: (tag: string) => guard.immutable(tag) } : {}), context, settleLater: true });
      return removed ? null : 'already gone';
    } catch (error) {
      if (error instanceof ImmutableTagError) return `tag ${error.tag} is immutable (rule ${error.rule})`;
      if (error instanceof ManifestInUseError) return `referenced by index ${error.index}`;
      throw error;
    }
  }

  private view(project: string, stored: StoredRetentionPolicy | null): RetentionView {
    if (!stored) return { project, policy: null, schedule: null, nextRunAt: null, lastRunAt: null };
    const schedule = this.scheduleOf(stored);
    return {
      project,
      policy: { ...(stored.rules as RetentionPolicy), ...(stored.schedule !== null ? { schedule: stored.schedule } : {}) },
      schedule,
      nextRunAt: schedule ? nextSlot(schedule, this.now()) : null,
      lastRunAt: stored.lastRunAt,
    };
  }

  private async requireOwner(actor: Actor, project: string): Promise<void> {
    await this.show(actor, project);
    await requireAccess(this.auth.authorizer, actor, { type: 'project', name: project, actions: ['admin'] }, `only owners of project ${project} and system administrators manage and run its retention policy`);
  }
}
