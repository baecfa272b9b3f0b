import type { PageRequest } from '../metadata-store.js';
import { catalogKey, type ListLeases } from './list-leases.js';
import { slicePage } from './tag-list.js';

/** Beyond this many repositories the catalog is paged in the database, not kept. */
const MAX_KEPT_NAMES = 10_000;
/** How long a catalog found too large to keep is paged in the database before it is counted again. */
const TOO_LARGE_RECHECK_MS = 60_000;

/**
 * The catalog (repository names) of a scale-out node, kept between requests while its listing
 * lease lasts (list-leases.ts): a catalog walk of n=100 pages then costs one PostgreSQL round
 * trip per lease, not one per page. Concurrent requests share one reload.
 */
export class CatalogLister {
  private names: string[] | undefined;
  private leasedUntil = -Infinity;
  private reload: Promise<string[] | null> | undefined;
  private tooLargeUntil = -Infinity;

  constructor(
    private readonly leases: ListLeases,
    /** Reads a page of the catalog from the database. */
    private readonly read: (page: PageRequest) => Promise<string[]>,
    private readonly maxNames = MAX_KEPT_NAMES,
  ) {}

  async list(page: PageRequest): Promise<string[]> {
    const now = this.leases.clock();
    if (now < this.tooLargeUntil) return this.read(page);
    if (this.names && now < this.leasedUntil) return slicePage(this.names, page);
    this.reload ??= this.load().finally(() => (this.reload = undefined));
    const names = await this.reload;
    return names ? slicePage(names, page) : this.read(page);
  }

  /** Takes the lease, then reads every name; null when there are too many to keep. */
  private async load(): Promise<string[] | null> {
    const leasedUntil = await this.leases.take(catalogKey);
    const names = await this.read({ limit: this.maxNames + 1 });
    if (names.length > this.maxNames) {
      this.names = undefined;
      this.tooLargeUntil = this.leases.clock() + TOO_LARGE_RECHECK_MS;
      return null;
    }
    this.names = names;
    this.leasedUntil = leasedUntil;
    return names;
  }
}
