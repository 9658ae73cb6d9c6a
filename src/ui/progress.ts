import { formatBytes } from '../shared/resources.js';

/**
 * An upload progress bar on a TTY ("[#####.....] 12.0 MiB / 40.0 MiB  5.1 MiB/s"), shown only once
 * the upload has taken more than a moment; silent elsewhere.
 */
export class ProgressBar {
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
    private readonly enabled: boolean,
    private readonly delayMs = 300,
  ) {}

  update(done: number, total: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.started < this.delayMs || (now - this.lastDraw < 100 && done < total)) return;
    this.lastDraw = now;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const cells = 24;
    const filled = Math.round(frac * cells);
    const rate = done / Math.max(0.001, (now - this.started) / 1000);
    const bar = '#'.repeat(filled) + '.'.repeat(cells - filled);
    this.out.write(`\r${this.label} [${bar}] ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s\u001b[K`);
    this.drawn = true;
  }

  finish(): void {
    if (this.drawn) this.out.write('\n');
  }
}
