import type { AuthService } from '../auth/service.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { AuditLog } from './audit.js';
import { AuditService } from './audit-service.js';
import { ProjectService } from './projects.js';
import { RepositoryService } from './repositories.js';
import { RobotService } from './robots.js';
import { PersonalTokenService } from './tokens.js';
import { UserService } from './users.js';
import { TagHistoryService, type BlobReader } from './tag-history.js';
import { GarbageService } from './garbage.js';
import { nodeName } from '../events/context.js';
import { EventRecorder, type EventRecorderOptions } from '../events/recorder.js';
import { WebhookService } from './webhooks.js';
import { QuotaService } from './quotas.js';
import { PullRecorder } from './pull-stats.js';
import { RetentionService } from './retention.js';

/** The management domain: what the API and the CLI call, every method authorizing its actor. */
export interface Control {
  auth: AuthService;
  audit: AuditLog;
  auditSearch: AuditService;
  users: UserService;
  projects: ProjectService;
  robots: RobotService;
  tokens: PersonalTokenService;
  repositories: RepositoryService;
  tagHistory: TagHistoryService;
  garbage: GarbageService;
  /** Events that no registry transaction writes: control-plane changes (emit) and pulls. */
  events: EventRecorder;
  webhooks: WebhookService;
  quotas: QuotaService;
  /** Pull statistics, counted in memory and written in batches. */
  pulls: PullRecorder;
  retention: RetentionService;
}

/**
 * `blobs`: where the image diff reads configs (without it, diffs leave config changes out);
 * `events`: this node's name (recorded with the changes: tag history, events) and pull events.
 */
export function createControl(metadata: MetadataStore, auth: AuthService, audit: AuditLog, blobs?: BlobReader, events: EventRecorderOptions = { node: nodeName() }): Control {
  const store = metadata.control;
  const pulls = new PullRecorder(metadata.pulls);
  const node = events.node;
  const recorder = new EventRecorder(metadata.events, events);
  const garbage = new GarbageService(metadata, auth);
  // Webhooks hear of every collection run that ends, succeeded or failed.
  garbage.onFinished((run) => {
    void recorder.emit({
      type: 'gc.finished',
      project: run.project,
      detail: {
        run: run.id,
        status: run.status,
        startedBy: run.actor,
        blobsFreed: run.blobsFreed,
        bytesFreed: run.bytesFreed,
        uploadsRemoved: run.uploadsRemoved,
        seconds: run.finishedAt ? (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000 : null,
        error: run.error,
      },
    });
  });
  return {
    events: recorder,
    webhooks: new WebhookService(metadata, auth, audit, recorder),
    auth,
    audit,
    auditSearch: new AuditService(audit, auth),
    users: new UserService(store, auth, audit),
    projects: new ProjectService(store, auth, audit, recorder),
    robots: new RobotService(store, auth, audit),
    tokens: new PersonalTokenService(store, auth, audit),
    repositories: new RepositoryService(store, metadata, auth, audit, node),
    tagHistory: new TagHistoryService(metadata, auth, audit, blobs, { node }),
    garbage,
    quotas: new QuotaService(metadata, auth, audit),
    pulls,
    retention: new RetentionService(metadata, auth, audit, pulls, { node, events: recorder }),
  };
}
