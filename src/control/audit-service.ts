import { z } from 'zod';
import type { AuthService } from '../auth/service.js';
import type { Actor } from '../auth/principal.js';
import type { AuditFilter, OffsetPage, Paged, StoredAuditEntry } from '../metadata/control-store.js';
import type { AuditLog } from './audit.js';
import { requireAccess, systemAccess } from './guard.js';
import { parse, projectName } from './validation.js';

const isoTime = z.iso.datetime({ offset: true, error: 'an RFC 3339 time, e.g. 2025-01-31T12:00:00Z' }).transform((s) => new Date(s));

export const auditFilterInput = z
  .object({
    actor: z.string().min(1).max(300).optional(),
    project: projectName.optional(),
    action: z.string().regex(/^[a-z.]{1,40}$/, 'an action such as login, manifest.push, user.create').optional(),
    result: z.enum(['success', 'failure', 'denied']).optional(),
    from: isoTime.optional(),
    to: isoTime.optional(),
  })
  .strict();

/** Queries of the audit log: everything for system admins, their project's entries for owners. */
export class AuditService {
  constructor(
    private readonly log: AuditLog,
    private readonly auth: AuthService,
  ) {}

  /** `filter` as parsed by auditFilterInput. */
  async search(actor: Actor, filter: AuditFilter, page: OffsetPage): Promise<Paged<StoredAuditEntry>> {
    if (filter.project !== undefined) parse(projectName, filter.project);
    if (filter.project === undefined) {
      await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators read the whole audit log; project owners may filter by their project');
    } else {
      await requireAccess(this.auth.authorizer, actor, { type: 'project', name: filter.project, actions: ['admin'] }, `only owners of project ${filter.project} and system administrators read its audit log`);
    }
    return this.log.query(filter, page);
  }
}
