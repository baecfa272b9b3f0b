/**
 * A progress bar on a terminal (stderr, one line redrawn); elsewhere (logs, pipes) a line each
 * time another tenth of the work is done, so that a long copy shows it is alive.
 */
export class ProgressBar {
  private readonly tty = process.stderr.isTTY === true;
  private lastTenth = -1;
  private lastDraw = 0;

  constructor(private readonly label: string) {}

  update(done: number, total: number, detail: string): void {
    const fraction = total > 0 ? Math.min(done / total, 1) : 1;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && done < total) return;
      this.lastDraw = now;
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r\x1b[K${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${detail}`);
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth === this.lastTenth) return;
    this.lastTenth = tenth;
    process.stderr.write(`${this.label}: ${(fraction * 100).toFixed(0)}% ${detail}\n`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
