import { z } from 'zod';
import type { Actor } from '../auth/principal.js';
import type { AuthService } from '../auth/service.js';
import { duration } from '../config/primitives.js';
import type { MetadataStore, UnreferencedBlob } from '../metadata/metadata-store.js';
import { requireAccess, systemAccess } from './guard.js';

/** Blobs recorded or linked more recently than this are never garbage (a push may be on its way). */
export const defaultGraceMs = 24 * 3600 * 1000;
/** The most blobs one preview lists (the totals still count them all). */
const MAX_LISTED = 10_000;

export const garbagePreviewInput = z
  .object({
    grace: duration.refine((ms) => ms >= 60_000, 'at least 1m').optional(),
  })
  .strict();

export interface GarbagePreview {
  graceMs: number;
  /** Blobs recorded and last linked before this are candidates. */
  before: Date;
  count: number;
  bytes: number;
  blobs: UnreferencedBlob[];
  /** More candidates exist than `blobs` lists. */
  truncated: boolean;
}

/**
 * What garbage collection would remove (a dry run; system administrators): blobs that no
 * manifest of any repository references, past the grace period. Deletion is not implemented yet
 * (see the README); this only reads.
 */
export class GarbageService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly auth: AuthService,
    private readonly now: () => number = Date.now,
  ) {}

  /** `options` as garbagePreviewInput parses them (the grace period in ms). */
  async preview(actor: Actor, options: { grace?: number }, onProgress?: (count: number, bytes: number) => void): Promise<GarbagePreview> {
    await requireAccess(this.auth.authorizer, actor, systemAccess, 'only system administrators run garbage collection');
    const graceMs = options.grace ?? defaultGraceMs;
    const before = new Date(this.now() - graceMs);
    const blobs: UnreferencedBlob[] = [];
    let count = 0;
    let bytes = 0;
    let last: string | undefined;
    for (;;) {
      const page = await this.metadata.lifecycle.unreferencedBlobs(before, { limit: 1000, ...(last !== undefined ? { last } : {}) });
      for (const blob of page) {
        count += 1;
        bytes += blob.size;
        if (blobs.length < MAX_LISTED) blobs.push(blob);
      }
      onProgress?.(count, bytes);
      if (page.length < 1000) break;
      last = page[page.length - 1]!.digest;
    }
    return { graceMs, before, count, bytes, blobs, truncated: count > blobs.length };
  }
}
