/**
 * Follows the frame boundaries of one direction of an HTTP/2 connection
 * (from the client: the 24-byte preface, then frames of a 9-byte header with
 * a 24-bit length), to tell whether a frame is in progress: readFrames() cuts
 * off a peer whose frame stays incomplete too long (slowloris); and which
 * frames pass (a server's GOAWAY, see http-server.ts). node:http2 buffers such a
 * frame and exposes no timer for it; its session timeout is about idleness.
 */
export class Http2FrameClock {
  /**
   * @param preface bytes of the client preface still to come: 24 for what a
   *   client sends, 0 for what a server sends.
   * @param onFrame told each frame's type and its first (up to 8) payload
   *   bytes once the frame is whole, e.g. a GOAWAY's error code.
   */
  constructor(
    private preface = 24,
    private readonly onFrame?: (type: number, payloadHead: Buffer) => void,
  ) {}

  private readonly header = Buffer.alloc(9);
  private readonly payloadHead = Buffer.alloc(8);
  private payloadHeadBytes = 0;
  private headerBytes = 0;
  private payloadLeft = 0;
  private started = false;
  private done = 0;

  /** Frames (and the preface) finished so far: readFrames times each frame from its start. */
  get completed(): number {
    return this.done;
  }

  get partial(): boolean {
    return (this.started && this.preface > 0) || this.headerBytes > 0 || this.payloadLeft > 0;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    if (chunk.length > 0) this.started = true;
    while (offset < chunk.length) {
      if (this.preface > 0) {
        const n = Math.min(this.preface, chunk.length - offset);
        this.preface -= n;
        offset += n;
        if (this.preface === 0) this.done++;
      } else if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - offset);
        if (this.onFrame !== undefined && this.payloadHeadBytes < 8) {
          this.payloadHeadBytes += chunk.copy(
            this.payloadHead,
            this.payloadHeadBytes,
            offset,
            offset + n,
          );
        }
        this.payloadLeft -= n;
        offset += n;
        if (this.payloadLeft === 0) this.frameDone();
      } else {
        const n = Math.min(9 - this.headerBytes, chunk.length - offset);
        chunk.copy(this.header, this.headerBytes, offset, offset + n);
        this.headerBytes += n;
        offset += n;
        if (this.headerBytes === 9) {
          this.headerBytes = 0;
          this.payloadHeadBytes = 0;
          this.payloadLeft = this.header.readUIntBE(0, 3);
          if (this.payloadLeft === 0) this.frameDone();
        }
      }
    }
  }

  private frameDone(): void {
    this.done++;
    this.onFrame?.(this.header[3] as number, this.payloadHead.subarray(0, this.payloadHeadBytes));
  }
}
