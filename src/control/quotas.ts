import { z } from 'zod';
import type { AuthService } from '../auth/service.js';
import type { Actor } from '../auth/principal.js';
import { byteSize } from '../config/backends-schema.js';
import type { ProjectUsage, QuotaLimits } from '../metadata/housekeeping-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { AuditLog } from './audit.js';
import { ControlError, notFound } from './errors.js';
import { requireAccess, systemAccess } from './guard.js';
import { parse, projectName } from './validation.js';

/** PUT body: `{ "bytes": "10GiB" | 10737418240 | null, "repositories": 50 | null }`; an omitted field is no limit. */
export const quotaInput = z
  .object({
    bytes: byteSize.refine((n) => n >= 1 && n <= Number.MAX_SAFE_INTEGER, 'between 1 byte and 8 PiB').nullable().default(null),
    repositories: z.number().int().min(1).max(1_000_000).nullable().default(null),
  })
  .strict();

export interface QuotaView {
  project: string;
  quota: QuotaLimits;
  usage: ProjectUsage;
}

/**
 * Project quotas and usage: anyone who sees a project reads them; its owners and system
 * administrators set them (audited as `project.quota`). Enforcement lives in the metadata store,
 * inside the transactions that link blobs and store manifests (see src/metadata/sql/quotas.ts).
 */
export class QuotaService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    private readonly audit: AuditLog,
  ) {}

  async show(actor: Actor, project: string): Promise<QuotaView> {
    parse(projectName, project);
    if (!(await this.auth.authorizer.allows(actor.principal, { type: 'project', name: project, actions: ['read'] }))) throw notFound(`project ${project}`);
    const quota = await this.metadata.quotas.get(project);
    if (!quota) throw notFound(`project ${project}`);
    return { project, quota, usage: await this.metadata.quotas.usage(project) };
  }

  async set(actor: Actor, project: string, input: unknown): Promise<QuotaView> {
    const parsed = quotaInput.safeParse(input ?? {});
    if (!parsed.success) throw ControlError.fromZod(parsed.error);
    await this.show(actor, project);
    await requireAccess(this.auth.authorizer, actor, { type: 'project', name: project, actions: ['admin'] }, `only owners of project ${project} and system administrators set its quota`);
    if (!(await this.metadata.quotas.set(project, parsed.data))) throw notFound(`project ${project}`);
    this.audit.record(actor, { action: 'project.quota', result: 'success', target: project, project, detail: { ...parsed.data } });
    return this.show(actor, project);
  }

  /** Usage of every project (system administrators), by name. */
  async all(actor: Actor): Promise<{ items: QuotaView[] }> {
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators see the usage of every project; give a project name');
    const items: QuotaView[] = [];
    for (let offset = 0; ; offset += 500) {
      const page = await this.metadata.control.projects.list({ visibleTo: { all: true } }, { offset, limit: 500 });
      for (const project of page.items) {
        const quota = await this.metadata.quotas.get(project.name);
        if (quota) items.push({ project: project.name, quota, usage: await this.metadata.quotas.usage(project.name) });
      }
      if (page.items.length < 500) break;
    }
    return { items };
  }
}
