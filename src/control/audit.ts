import type { Logger } from 'pino';
import type { AuditEntry, AuditFilter, AuditQueries, AuditResult, OffsetPage, Paged, StoredAuditEntry } from '../metadata/control-store.js';
import { actorName, type Actor } from '../auth/principal.js';
import { projectOf } from '../auth/authorizer.js';
import { BatchedWrites } from './batched-writes.js';
import { TupleMap } from './tuple-map.js';

export interface AuditEvent {
  action: string;
  result: AuditResult;
  /** What was acted on: `team/app:v1`, `team/app@sha256:…`, a user or project name. */
  target?: string | null;
  /** The project concerned; derived from a repository target when not given. */
  project?: string | null;
  /** Small, secret-free facts (digest, role, reason). */
  detail?: Record<string, unknown> | null;
}

export interface AuditLogOptions {
  /** Entries are written in batches: after this long, or when this many wait. */
  flushMs?: number;
  batchSize?: number;
  now?: () => number;
}

/**
 * The audit log: pushes, manifest pulls, deletions, tag moves, logins (success and failure),
 * credential creation and permission changes, each with actor, source address, time, target and
 * result. Entries are buffered and written in one transaction per batch (every `flushMs`, by
 * default 500 ms), so that recording a manifest pull costs no database write on the request's
 * path; a crash can lose the last fraction of a second of entries. `flush()` writes at once
 * (queries and shutdown call it).
 *
 * Identical events of one batch (same actor, address, action, target, result and detail: a
 * client pulling one tag again and again) become one entry with their `count`, timed at the
 * first. Under a pull load that keeps the log's size, and the writes, proportional to the
 * distinct pulls instead of all of them, while every pull is still counted.
 */
export class AuditLog {
  private buffer: AuditEntry[] = [];
  /** The buffered entries by identity, to count repeats into. */
  private readonly pending = new TupleMap<AuditEntry>(8);
  private readonly writes: BatchedWrites<AuditEntry>;
  private readonly now: () => number;

  constructor(
    private readonly store: AuditQueries,
    private readonly logger: Logger,
    options: AuditLogOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.writes = new BatchedWrites({
      flushMs: options.flushMs ?? 500,
      batchSize: options.batchSize ?? 500,
      take: () => {
        this.pending.clear();
        return this.buffer.splice(0);
      },
      write: (batch) => this.store.append(batch),
      // The log must not take requests down with it; the loss itself is logged.
      failed: (error, entries) => this.logger.error({ err: error, entries }, 'writing audit log entries failed'),
    });
  }

  record(actor: Actor, event: AuditEvent): void {
    const principal = actor.principal;
    const name = actorName(principal);
    const project = event.project !== undefined ? event.project : event.target ? projectOfTarget(event.target) : null;
    const target = event.target ?? null;
    const detail = event.detail ?? null;
    // Field by field, so that no value can pass for another (a failed login's user name is anyone's).
    const identity = [name, principal.kind, actor.address, event.action, project, target, event.result, detail === null ? null : JSON.stringify(detail)];
    const same = this.pending.get(identity);
    if (same) {
      // Already buffered, so a write is already due.
      same.count = (same.count ?? 1) + 1;
      return;
    }
    const entry: AuditEntry = { at: new Date(this.now()), actor: name, actorKind: principal.kind, address: actor.address, action: event.action, project, target, result: event.result, detail, count: 1 };
    this.buffer.push(entry);
    this.pending.set(identity, entry);
    this.writes.recorded(this.buffer.length);
  }

  /** Writes what is buffered; resolves when everything recorded before the call is stored. */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  async query(filter: AuditFilter, page: OffsetPage): Promise<Paged<StoredAuditEntry>> {
    await this.flush();
    return this.store.query(filter, page);
  }

  /** Removes entries older than the retention. */
  async purge(retentionMs: number): Promise<number> {
    return this.store.purge(new Date(this.now() - retentionMs));
  }
}

/** The project of a target such as `team/app:v1` or `team/app@sha256:…`. */
function projectOfTarget(target: string): string | null {
  const name = target.split(/[:@]/, 1)[0]!;
  return /^[a-z0-9]/.test(name) ? projectOf(name) : null;
}
