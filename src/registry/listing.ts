import { requireDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { mediaTypes } from './media-types.js';
import type { MetadataStore } from '../metadata/metadata-store.js';

export interface Page {
  items: string[];
  /** The `last` value for the next page, when there may be more. */
  next?: string;
}

/** The most entries one page returns, whatever `n` asks for. */
export const maxPageSize = 10_000;

/** Tag lists, the catalog and the referrers index. */
export class ListingService {
  constructor(private readonly metadata: MetadataStore) {}

  async tags(repository: string, n: number | undefined, last: string | undefined): Promise<Page> {
    const page = await paginate(n, (limit) => this.metadata.tags.list(repository, { last, limit }));
    // A repository with tags has content; only an empty page needs the existence check (one
    // query, a database round trip on PostgreSQL, saved on every other listing).
    if (page.items.length === 0 && !(await this.metadata.repositories.exists(repository))) {
      throw new RegistryError('NAME_UNKNOWN', 'repository not found', { name: repository });
    }
    return page;
  }

  /** Repository names; with `visible`, only those it accepts (read in chunks until the page is full). */
  async catalog(n: number | undefined, last: string | undefined, visible?: (name: string) => Promise<boolean>): Promise<Page> {
    if (!visible) return paginate(n, (limit) => this.metadata.repositories.list({ last, limit }));
    return paginate(n, async (limit) => {
      const found: string[] = [];
      let cursor = last;
      for (;;) {
        const chunk = await this.metadata.repositories.list({ last: cursor, limit: Math.max(limit, 1000) });
        for (const name of chunk) {
          if (await visible(name)) found.push(name);
          if (found.length === limit) return found;
        }
        if (chunk.length === 0) return found;
        cursor = chunk[chunk.length - 1];
      }
    });
  }

  /** An OCI image index of the manifests whose subject is `digest`. */
  async referrers(repository: string, digestParam: string, artifactType: string | undefined) {
    const parsed = requireDigest(digestParam);
    const digest = `${parsed.algorithm}:${parsed.hex}`;
    const referrers = await this.metadata.manifests.referrers(repository, digest, artifactType);
    return {
      schemaVersion: 2,
      mediaType: mediaTypes.ociIndex,
      manifests: referrers.map((r) => ({
        mediaType: r.mediaType,
        digest: r.digest,
        size: r.size,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
        ...(r.annotations ? { annotations: r.annotations } : {}),
      })),
    };
  }
}

/** Fetches one item more than asked to know whether a next page exists. */
async function paginate(n: number | undefined, fetch: (limit: number) => Promise<string[]>): Promise<Page> {
  const pageSize = n === undefined ? maxPageSize : Math.min(n, maxPageSize);
  if (pageSize === 0) return { items: [] };
  const rows = await fetch(pageSize + 1);
  if (rows.length <= pageSize) return { items: rows };
  const items = rows.slice(0, pageSize);
  return { items, next: items[items.length - 1] };
}
