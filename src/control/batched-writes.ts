/**
 * Writes what a hot path records (audit entries, pull counts, pull events) off that path: a
 * batch at most `flushMs` after its first item, or at once when `batchSize` items wait; one
 * write at a time, in order. A failed write is reported to `failed`, never thrown: recording
 * must not take requests down. The owner keeps the items (an array, a map of counters...) and
 * hands them over in `take`.
 */
export class BatchedWrites<T> {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: {
      flushMs: number;
      batchSize: number;
      /** Removes and returns what waits. */
      take: () => T[];
      write: (batch: T[]) => Promise<void>;
      failed: (error: unknown, items: number) => void;
    },
  ) {}

  /** Call after recording an item; `waiting` is how many wait now. */
  recorded(waiting: number): void {
    if (waiting >= this.options.batchSize) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.options.flushMs);
      this.timer.unref();
    }
  }

  /** Writes what waits; resolves when everything recorded before the call is stored. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.options.take();
    this.writing = this.writing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.options.write(batch);
      } catch (error) {
        this.options.failed(error, batch.length);
      }
    });
    return this.writing;
  }
}
