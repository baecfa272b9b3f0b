import { closeSync, openSync, readSync } from 'node:fs';

/** Bytes 0–47 of the -shm file: the first copy of the WAL-index header. */
const HEADER_BYTES = 48;

/**
 * Tells, for about a microsecond, whether any connection (this one, another worker, a CLI) may
 * have committed to a WAL-mode SQLite database since the last call: it reads the first copy of
 * the WAL-index header at the start of the `-shm` file (one `pread`; the format is documented in
 * https://www.sqlite.org/walformat.html). SQLite updates that header in shared memory during
 * every commit, before the commit returns — the change counter, the last valid frame, checksums
 * and, when the WAL restarts, the salts — while reads and checkpoints leave it alone.
 *
 * Why: `PRAGMA data_version`, which the read caches checked before every cached lookup, opens a
 * read transaction, with `fcntl` locks on the `-shm` file: about 6–10 µs of a manifest GET's
 * 40 µs of the worker's own work. It is now read only after the header moved.
 *
 * A torn read (a commit writing the header meanwhile) differs from the last bytes unless it
 * read none of the new ones, which then had not committed yet: "changed" is never missed.
 */
export class SqliteCommitProbe {
  private readonly fd: number;
  private last = Buffer.alloc(HEADER_BYTES, 0xff);
  private next = Buffer.alloc(HEADER_BYTES);

  /** `databaseFile`: a WAL-mode database that this process keeps open (so its -shm stays). */
  constructor(databaseFile: string) {
    this.fd = openSync(`${databaseFile}-shm`, 'r');
  }

  /** True when the header differs from the previous call's (always on the first call). */
  changed(): boolean {
    const read = readSync(this.fd, this.next, 0, HEADER_BYTES, 0);
    if (read === HEADER_BYTES && this.next.equals(this.last)) return false;
    [this.last, this.next] = [this.next, this.last];
    // A short read (the file was just created) never matches: the last bytes stay unusable.
    if (read !== HEADER_BYTES) this.last.fill(0xff);
    return true;
  }

  close(): void {
    closeSync(this.fd);
  }
}
