/**
 * How much of a plugin's output the host logs: a token bucket over lines and
 * bytes. A plugin that writes stderr without end would otherwise cost the host
 * a log record per line for ever (the pipe itself is drained regardless, so
 * the plugin never blocks). Over budget, lines are dropped and counted; the
 * host says so once when dropping starts and once when it ends.
 *
 * Defaults: 5,000 lines and 4 MiB per second sustained, bursts of 50,000
 * lines and 32 MiB (a plugin that dumps 20 MiB at start-up loses nothing).
 */
export class OutputBudget {
  private lines: number;
  private bytes: number;
  private last: number;
  private dropped = 0;

  constructor(
    /** Told when dropping starts (dropped = 0) and when it ends (dropped = lines lost). */
    private readonly onChange: (dropping: boolean, dropped: number) => void,
    private readonly linesPerSecond = 5_000,
    private readonly bytesPerSecond = 4 * 1024 * 1024,
    private readonly burstLines = 50_000,
    private readonly burstBytes = 32 * 1024 * 1024,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.lines = burstLines;
    this.bytes = burstBytes;
    this.last = now();
  }

  /** True if a line of `length` bytes may be logged. */
  admit(length: number): boolean {
    const t = this.now();
    const seconds = (t - this.last) / 1000;
    this.last = t;
    this.lines = Math.min(this.burstLines, this.lines + seconds * this.linesPerSecond);
    this.bytes = Math.min(this.burstBytes, this.bytes + seconds * this.bytesPerSecond);
    if (this.lines >= 1 && this.bytes >= length) {
      this.lines -= 1;
      this.bytes -= length;
      if (this.dropped > 0) {
        const dropped = this.dropped;
        this.dropped = 0;
        this.onChange(false, dropped);
      }
      return true;
    }
    if (this.dropped++ === 0) this.onChange(true, 0);
    return false;
  }

  /**
   * Reports the lines dropped since the last report, if any: called when the
   * stream ends, so that a plugin that exits while over budget still has its
   * loss counted in the log.
   */
  flush(): void {
    if (this.dropped === 0) return;
    const dropped = this.dropped;
    this.dropped = 0;
    this.onChange(false, dropped);
  }
}
