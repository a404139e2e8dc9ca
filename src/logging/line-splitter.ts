/**
 * Splits a byte stream into lines, calling `onLine` for each. A line longer
 * than `maxLineBytes` is cut into pieces of that size, so that a plugin that
 * writes megabytes without a newline cannot make the host buffer without
 * bound. The host reads the plugin's pipes continuously through this, which
 * is what keeps a plugin that floods stderr from blocking on a full pipe.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineBytes = 64 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      this.append(chunk.subarray(start, end));
      if (newline === -1) return;
      this.emit();
      start = newline + 1;
    }
  }

  /** Emits what is left without a trailing newline. */
  end(): void {
    if (this.pendingBytes > 0) this.emit();
  }

  private append(bytes: Buffer): void {
    while (bytes.length > 0) {
      const room = this.maxLineBytes - this.pendingBytes;
      const piece = bytes.subarray(0, room);
      this.pending.push(piece);
      this.pendingBytes += piece.length;
      bytes = bytes.subarray(piece.length);
      if (this.pendingBytes >= this.maxLineBytes) this.emit();
    }
  }

  private emit(): void {
    let line = Buffer.concat(this.pending, this.pendingBytes).toString("utf8");
    if (line.endsWith("\r")) line = line.slice(0, -1);
    this.pending = [];
    this.pendingBytes = 0;
    this.onLine(line);
  }
}

/** Keeps the last few lines of a stream, for error messages. */
export class TailBuffer {
  private readonly lines: string[] = [];

  constructor(
    private readonly maxLines = 20,
    private readonly maxLineChars = 500,
  ) {}

  push(line: string): void {
    this.lines.push(
      line.length > this.maxLineChars ? `${line.slice(0, this.maxLineChars)}…` : line,
    );
    if (this.lines.length > this.maxLines) this.lines.shift();
  }

  toString(): string {
    return this.lines.join("\n");
  }
}
