import type { QueryResult } from 'kysely';
import { MetadataUnavailableError } from '../metadata-store.js';

/** Runs one statement on a pooled connection. */
export type RunStatement = <R>(text: string, values: ReadonlyArray<unknown>) => Promise<QueryResult<R>>;

interface Waiting {
  values: string[];
  resolve: (result: QueryResult<unknown>) => void;
  reject: (error: unknown) => void;
}

/** Lookups sent together at most (a longer queue is sent in several statements). */
const MAX_BATCH = 128;
const INDEX_COLUMN = 'stowage_batch_index';

/**
 * The hot-path lookups (manifest by tag or digest, blob in a repository, a repository's tag
 * version) of concurrent requests, sent to PostgreSQL together: at most `inFlight` of them run at
 * once, each on its own; the lookups that arrive meanwhile wait, and when one finishes, every
 * waiting lookup of the same statement goes out as ONE statement that runs the original once per
 * lookup (`unnest` of the parameter arrays, the original query as a LATERAL subquery). A round trip
 * costs both sides far more CPU than the index reads in it (on the test machines about 45 µs of
 * the node's and 30 µs of PostgreSQL's time, against about 20 µs for the reads), so under load
 * this divides most of the cost by the batch size, and without load (nothing waits) nothing
 * changes.
 *
 * Nothing is cached: every lookup is read by a statement that starts after the lookup was asked
 * for, so it sees every change committed before (through any node).
 */
export class HotLookups {
  private running = 0;
  /** Waiting lookups by statement text, oldest statement first. */
  private readonly waiting = new Map<string, Waiting[]>();

  constructor(
    private readonly run: RunStatement,
    private readonly inFlight: number,
  ) {}

  lookup<R>(text: string, values: ReadonlyArray<unknown>): Promise<QueryResult<R>> {
    if (this.running < this.inFlight || !values.every((v) => typeof v === 'string')) return this.start(() => this.run<R>(text, values));
    return new Promise<QueryResult<R>>((resolve, reject) => {
      const entry: Waiting = { values: values as string[], resolve: resolve as Waiting['resolve'], reject };
      const queue = this.waiting.get(text);
      if (queue) queue.push(entry);
      else this.waiting.set(text, [entry]);
    });
  }

  private start<R>(work: () => Promise<R>): Promise<R> {
    this.running++;
    return work().finally(() => {
      this.running--;
      this.next();
    });
  }

  private next(): void {
    while (this.running < this.inFlight && this.waiting.size > 0) {
      const [text, queue] = this.waiting.entries().next().value as [string, Waiting[]];
      const batch = queue.splice(0, MAX_BATCH);
      if (queue.length === 0) this.waiting.delete(text);
      void this.start(() => this.send(text, batch));
    }
  }

  private async send(text: string, batch: Waiting[]): Promise<void> {
    try {
      if (batch.length === 1) {
        batch[0]!.resolve(await this.run(text, batch[0]!.values));
        return;
      }
      const columns = batch[0]!.values.length;
      const arrays = Array.from({ length: columns }, (_, c) => batch.map((w) => w.values[c]!));
      let rows: Record<string, unknown>[];
      try {
        ({ rows } = await this.run<Record<string, unknown>>(batchedText(text, columns), arrays));
      } catch (error) {
        if (error instanceof MetadataUnavailableError) throw error;
        // A text the rewrite does not suit (a parameter compared with a non-text column, say):
        // each lookup on its own, as it would have run unbatched.
        await Promise.all(batch.map((w) => this.run(text, w.values).then(w.resolve, w.reject)));
        return;
      }
      const byLookup = batch.map(() => [] as unknown[]);
      for (const row of rows) {
        const { [INDEX_COLUMN]: index, ...original } = row;
        byLookup[Number(index) - 1]!.push(original);
      }
      batch.forEach((w, i) => w.resolve({ rows: byLookup[i]! }));
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}

const batched = new Map<string, string>();

/**
 * `select … where a = $1 and b = $2` as one statement for many parameter sets:
 * `select q.i, x.* from unnest($1::text[], $2::text[]) with ordinality as q(p1, p2, i)
 *  cross join lateral (select … where a = q.p1 and b = q.p2) as x`.
 * Only for the precompiled hot-path texts, whose only `$` are their placeholders.
 */
function batchedText(text: string, columns: number): string {
  const key = `${columns}:${text}`;
  let result = batched.get(key);
  if (result === undefined) {
    const names = Array.from({ length: columns }, (_, c) => `p${c + 1}`);
    const inner = text.replace(/\$(\d+)/g, (_, n: string) => `"stowage_batch"."p${n}"`);
    result =
      `select "stowage_batch"."i" as "${INDEX_COLUMN}", "stowage_lookup".* ` +
      `from unnest(${names.map((_, c) => `$${c + 1}::text[]`).join(', ')}) with ordinality as "stowage_batch"(${names.join(', ')}, i) ` +
      `cross join lateral (${inner}) as "stowage_lookup"`;
    batched.set(key, result);
  }
  return result;
}
