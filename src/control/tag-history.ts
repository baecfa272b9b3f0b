import type { Readable } from 'node:stream';
import { z } from 'zod';
import { projectOf } from '../auth/authorizer.js';
import { duration } from '../config/primitives.js';
import { actorName, type Actor } from '../auth/principal.js';
import type { AuthService } from '../auth/service.js';
import { ImmutableTagError, type ManifestRecord, type MetadataStore, type TagHistoryEntry, type TagRule } from '../metadata/metadata-store.js';
import { describeRule, tagGuardFor } from '../registry/immutability.js';
import { parseDigest } from '../registry/digest.js';
import { parseManifest } from '../registry/manifest-parser.js';
import { isRepositoryName, isTag } from '../registry/names.js';
import type { AuditLog } from './audit.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess } from './guard.js';
import { nodeName, writeContextOf } from '../events/context.js';
import type { WriteContext } from '../metadata/events-store.js';

/** How long a tag's earlier digests stay restorable, unless a project sets its own window. */
export const defaultHistoryWindowMs = 14 * 24 * 3600 * 1000;

/** What the diff reads of blob storage: an image's config. */
export interface BlobReader {
  open(digest: string): Promise<Readable>;
}

export interface TagHistoryOptions {
  windowMs?: number;
  now?: () => number;
  /** This node's name, recorded with rollbacks. */
  node?: string;
}

export const rollbackInput = z
  .object({
    to: z
      .string()
      .max(200)
      .refine((v) => parseDigest(v) !== null, 'not a digest (sha256:<64 hex>)')
      .optional(),
    steps: z.number().int().min(1).max(10_000).optional(),
  })
  .strict()
  .refine((v) => v.to === undefined || v.steps === undefined, { message: 'give either to or steps, not both' });

export const lifecycleInput = z
  .object({
    /** A duration (30d, 36h) between 1h and 3650d, or null for the default (14 days). */
    historyWindow: duration.refine((ms) => ms >= 3_600_000 && ms <= 3650 * 86_400_000, 'between 1h and 3650d').nullable(),
  })
  .strict();

/** Tags matching `tag` (glob: * and ?) in repositories matching `repository` (default: all of the project) never move once they exist. */
export const tagRuleInput = z
  .object({
    repository: z.string().min(1).max(255).regex(/^[a-z0-9._/*?-]+$/, 'a repository name pattern (*, ?)').optional(),
    tag: z.string().min(1).max(128).regex(/^[\w.*?-]+$/, 'a tag pattern (*, ?)'),
  })
  .strict();

export interface LifecycleView {
  project: string;
  /** The window in force (the project's, or the default). */
  historyWindowMs: number;
  /** True when the project sets its own window. */
  custom: boolean;
}

export interface HistoryItem {
  previousDigest: string | null;
  digest: string | null;
  at: Date;
  /** Inside the history window: the digests it names may be restored. */
  inWindow: boolean;
  /** Who moved the tag (name, kind, address) and on which node; null for moves recorded before this was kept. */
  by: WriteContext | null;
}

export interface TagHistory {
  repository: string;
  tag: string;
  current: string | null;
  windowStart: Date;
  items: HistoryItem[];
}

export interface RollbackResult {
  repository: string;
  tag: string;
  previousDigest: string | null;
  digest: string;
  /** False when the tag already pointed at the digest (nothing was recorded). */
  moved: boolean;
}

interface Side {
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  config: { digest: string; size: number } | null;
  layers: { digest: string; size: number; mediaType: string }[];
}

/**
 * Tag history, rollback and image diff for the management API and the CLI. Reading needs pull
 * on the repository; a rollback needs push, restores only a digest the tag named inside the
 * history window, and is itself a recorded move (through the same metadata call as a manifest
 * PUT with a tag, so it takes the same repository lock).
 */
export class TagHistoryService {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly node: string;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
    private readonly blobs?: BlobReader,
    options: TagHistoryOptions = {},
  ) {
    this.windowMs = options.windowMs ?? defaultHistoryWindowMs;
    this.now = options.now ?? Date.now;
    this.node = options.node ?? nodeName();
  }

  async history(actor: Actor, repository: string, tag: string): Promise<TagHistory> {
    await this.require(actor, repository, 'pull');
    requireTag(tag);
    const [entries, current, windowMs] = await Promise.all([
      this.metadata.tags.history(repository, tag),
      this.metadata.tags.get(repository, tag),
      this.windowOf(projectOf(repository)),
    ]);
    if (entries.length === 0 && !current) throw notFound(`tag ${repository}:${tag}`);
    const windowStart = this.now() - windowMs;
    return {
      repository,
      tag,
      current: current?.digest ?? null,
      windowStart: new Date(windowStart),
      items: entries.map((e) => ({ previousDigest: e.previousDigest, digest: e.digest, at: e.at, inWindow: e.at.getTime() >= windowStart, by: e.by })),
    };
  }

  async rollback(actor: Actor, repository: string, tag: string, input: unknown): Promise<RollbackResult> {
    await this.require(actor, repository, 'push');
    requireTag(tag);
    const parsed = rollbackInput.safeParse(input ?? {});
    if (!parsed.success) throw ControlError.fromZod(parsed.error);
    const [entries, windowMs] = await Promise.all([this.metadata.tags.history(repository, tag), this.windowOf(projectOf(repository))]);
    if (entries.length === 0) throw notFound(`tag ${repository}:${tag}`);
    const windowStart = this.now() - windowMs;
    const target = parsed.data.to ?? this.stepsBack(entries, parsed.data.steps ?? 1, windowStart, repository, tag);
    if (parsed.data.to !== undefined && !namedInWindow(entries, target, windowStart)) {
      throw new ControlError('conflict', `${repository}:${tag} did not point at ${target} within the history window (since ${new Date(windowStart).toISOString()})`);
    }
    const record = await this.metadata.manifests.get(repository, target);
    if (!record) throw new ControlError('conflict', `manifest ${target} is no longer in ${repository}; it cannot be restored`);
    const current = await this.metadata.tags.get(repository, tag);
    const result: RollbackResult = { repository, tag, previousDigest: current?.digest ?? null, digest: target, moved: current?.digest !== target };
    if (result.moved) {
      // Re-pushing the stored bytes: the manifest's references are re-derived, so even if it
      // were deleted meanwhile, it could only come back with all its blobs present.
      try {
        const guard = await tagGuardFor(this.metadata, repository);
        await this.metadata.manifests.put(repository, { ...parseManifest(record.content, record.mediaType), digest: record.digest }, tag, { ...guard, context: writeContextOf(actor, this.node) });
      } catch (error) {
        if (!(error instanceof ImmutableTagError)) throw error;
        this.audit.record(actor, { action: 'tag.immutable', result: 'denied', target: `${repository}:${tag}`, detail: { rule: error.rule, digest: error.digest, method: 'rollback' } });
        throw new ControlError('forbidden', `tag ${tag} is immutable (rule ${error.rule}); it cannot be rolled back`);
      }
    }
    this.audit.record(actor, {
      action: 'tag.rollback',
      result: 'success',
      target: `${repository}:${tag}`,
      detail: { from: result.previousDigest, to: target },
    });
    return result;
  }

  /** A project's lifecycle settings (members and anyone who can see the project). */
  async settings(actor: Actor, project: string): Promise<LifecycleView> {
    if (!(await this.auth.authorizer.allows(actor.principal, { type: 'project', name: project, actions: ['read'] }))) throw notFound(`project ${project}`);
    const settings = await this.metadata.lifecycle.get(project);
    if (!settings) throw notFound(`project ${project}`);
    return { project, historyWindowMs: settings.historyWindowMs ?? this.windowMs, custom: settings.historyWindowMs !== null };
  }

  /** Changes a project's lifecycle settings (owners and system administrators). */
  async configure(actor: Actor, project: string, input: unknown): Promise<LifecycleView> {
    const parsed = lifecycleInput.safeParse(input ?? {});
    if (!parsed.success) throw ControlError.fromZod(parsed.error);
    await this.requireOwner(actor, project);
    if (!(await this.metadata.lifecycle.set(project, { historyWindowMs: parsed.data.historyWindow }))) throw notFound(`project ${project}`);
    this.audit.record(actor, { action: 'project.lifecycle', result: 'success', target: project, project, detail: { historyWindowMs: parsed.data.historyWindow } });
    return this.settings(actor, project);
  }

  /** A project's immutable tag rules (anyone who can see the project). */
  async rules(actor: Actor, project: string): Promise<{ items: TagRule[] }> {
    await this.settings(actor, project);
    return { items: await this.metadata.lifecycle.rules(project) };
  }

  /** Adds an immutable tag rule (owners and system administrators). */
  async addRule(actor: Actor, project: string, input: unknown): Promise<TagRule> {
    const parsed = tagRuleInput.safeParse(input ?? {});
    if (!parsed.success) throw ControlError.fromZod(parsed.error);
    await this.requireOwner(actor, project);
    const repository = parsed.data.repository ?? `${project}/*`;
    if (repository !== project && !repository.startsWith(`${project}/`)) {
      throw new ControlError('invalid', `the repository pattern must be within the project (${project}/...)`, [{ field: 'repository', message: `must start with ${project}/` }]);
    }
    const rule = await this.metadata.lifecycle.addRule(project, { repository, tag: parsed.data.tag, createdBy: actorName(actor.principal) });
    if (!rule) throw notFound(`project ${project}`);
    this.audit.record(actor, { action: 'project.tag-rule.add', result: 'success', target: project, project, detail: { rule: describeRule(rule) } });
    return rule;
  }

  async deleteRule(actor: Actor, project: string, id: string): Promise<void> {
    await this.requireOwner(actor, project);
    if (!(await this.metadata.lifecycle.deleteRule(project, id))) throw notFound(`rule ${id} of project ${project}`);
    this.audit.record(actor, { action: 'project.tag-rule.delete', result: 'success', target: project, project, detail: { id } });
  }

  private async requireOwner(actor: Actor, project: string): Promise<void> {
    await this.settings(actor, project);
    await requireAccess(this.auth.authorizer, actor, { type: 'project', name: project, actions: ['admin'] }, `only owners of project ${project} and system administrators may do this`);
  }

  /** The history window of a project's repositories (repositories outside projects: the default). */
  private async windowOf(project: string): Promise<number> {
    return (await this.metadata.lifecycle.get(project))?.historyWindowMs ?? this.windowMs;
  }

  /** The digest the tag pointed at `steps` moves ago. */
  private stepsBack(entries: TagHistoryEntry[], steps: number, windowStart: number, repository: string, tag: string): string {
    const entry = entries[steps - 1];
    if (!entry) throw new ControlError('conflict', `${repository}:${tag} has moved only ${entries.length} time(s)`);
    if (entry.at.getTime() < windowStart) {
      throw new ControlError('conflict', `${steps} move(s) back is before the history window (since ${new Date(windowStart).toISOString()})`);
    }
    if (entry.previousDigest === null) throw new ControlError('conflict', `${repository}:${tag} did not exist ${steps} move(s) ago`);
    return entry.previousDigest;
  }

  /** Layers shared and changed, config changes (env, entrypoint, cmd, labels...) and size change. */
  async diff(actor: Actor, repository: string, from: string, to: string) {
    await this.require(actor, repository, 'pull');
    const [a, b] = await Promise.all([this.side(repository, from), this.side(repository, to)]);
    const bDigests = new Set(b.layers.map((l) => l.digest));
    const aDigests = new Set(a.layers.map((l) => l.digest));
    const total = (s: Side) => (s.config?.size ?? 0) + s.layers.reduce((sum, l) => sum + l.size, 0);
    const [ca, cb] = await Promise.all([this.config(a), this.config(b)]);
    return {
      repository,
      from: summary(a, total(a)),
      to: summary(b, total(b)),
      identical: a.digest === b.digest,
      layers: {
        shared: a.layers.filter((l) => bDigests.has(l.digest)),
        removed: a.layers.filter((l) => !bDigests.has(l.digest)),
        added: b.layers.filter((l) => !aDigests.has(l.digest)),
      },
      config: ca && cb ? configChanges(ca, cb) : null,
      sizeChange: total(b) - total(a),
    };
  }

  private async side(repository: string, reference: string): Promise<Side> {
    let record: ManifestRecord | null;
    if (reference.includes(':')) {
      if (!parseDigest(reference)) throw new ControlError('invalid', `invalid digest ${reference.slice(0, 100)}`, [{ field: 'reference', message: 'not a digest' }]);
      record = await this.metadata.manifests.get(repository, reference);
    } else {
      requireTag(reference);
      record = await this.metadata.manifests.getByTag(repository, reference);
    }
    if (!record) throw notFound(`manifest ${repository}:${reference}`);
    const json = JSON.parse(record.content.toString('utf8')) as { config?: { digest: string; size: number }; layers?: { digest: string; size: number; mediaType: string }[] };
    if (!Array.isArray(json.layers)) {
      throw new ControlError('invalid', `${reference} is an index (${record.mediaType}); diff the digests of platform manifests`);
    }
    return {
      reference,
      digest: record.digest,
      mediaType: record.mediaType,
      size: record.size,
      config: json.config ? { digest: json.config.digest, size: json.config.size } : null,
      layers: json.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    };
  }

  /** The image config's runtime settings, or null when there is none to read. */
  private async config(side: Side): Promise<ImageConfig | null> {
    if (!this.blobs || !side.config || side.config.size > 1024 * 1024 || side.config.size <= 2) return null;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of await this.blobs.open(side.config.digest)) chunks.push(chunk as Buffer);
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { config?: ImageConfig };
      return parsed.config ?? {};
    } catch {
      return null;
    }
  }

  private async require(actor: Actor, repository: string, action: 'pull' | 'push'): Promise<void> {
    if (!isRepositoryName(repository)) throw new ControlError('invalid', 'invalid repository name', [{ field: 'repository', message: 'not a repository name' }]);
    const granted = await this.auth.authorizer.authorize(actor.principal, { type: 'repository', name: repository, actions: ['pull', action] });
    if (!granted.includes('pull')) {
      if (actor.principal.kind === 'anonymous') throw new ControlError('unauthorized', 'authentication required');
      throw notFound(`repository ${repository}`);
    }
    if (!granted.includes(action)) throw new ControlError('forbidden', `you may not ${action} to repository ${repository}`);
  }
}

interface ImageConfig {
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Labels?: Record<string, string> | null;
  User?: string;
  WorkingDir?: string;
}

function requireTag(tag: string): void {
  if (!isTag(tag)) throw new ControlError('invalid', 'invalid tag', [{ field: 'tag', message: 'not a valid tag' }]);
}

/** The digest was the tag's target at some time inside the window. */
function namedInWindow(entries: TagHistoryEntry[], digest: string, windowStart: number): boolean {
  return entries.some((e) => e.at.getTime() >= windowStart && (e.digest === digest || e.previousDigest === digest));
}

function summary(side: Side, total: number) {
  return { reference: side.reference, digest: side.digest, mediaType: side.mediaType, layers: side.layers.length, size: total };
}

function mapChanges(a: Record<string, string>, b: Record<string, string>) {
  const added: Record<string, string> = {};
  const removed: Record<string, string> = {};
  const changed: Record<string, { from: string; to: string }> = {};
  for (const [k, v] of Object.entries(b)) {
    if (!(k in a)) added[k] = v;
    else if (a[k] !== v) changed[k] = { from: a[k]!, to: v };
  }
  for (const [k, v] of Object.entries(a)) if (!(k in b)) removed[k] = v;
  return { added, removed, changed };
}

function envMap(env: string[] | null | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  for (const entry of env ?? []) {
    const eq = entry.indexOf('=');
    if (eq === -1) map[entry] = '';
    else map[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return map;
}

function configChanges(a: ImageConfig, b: ImageConfig) {
  const same = (x: unknown, y: unknown) => JSON.stringify(x ?? null) === JSON.stringify(y ?? null);
  const field = <T>(x: T | undefined, y: T | undefined) => (same(x, y) ? null : { from: x ?? null, to: y ?? null });
  return {
    env: mapChanges(envMap(a.Env), envMap(b.Env)),
    labels: mapChanges(a.Labels ?? {}, b.Labels ?? {}),
    entrypoint: field(a.Entrypoint, b.Entrypoint),
    cmd: field(a.Cmd, b.Cmd),
    user: field(a.User, b.User),
    workingDir: field(a.WorkingDir, b.WorkingDir),
  };
}
