import { EnvelopePart } from "./envelope-part.js";
import { copyInto } from "./growing-bytes.js";
import { envelopeSize } from "./unary-body.js";

/**
 * Bytes of messages queued and not read (their envelopes' size) above which
 * the HTTP/2 stream is paused: node:http2 then stops reading it and sends
 * no WINDOW_UPDATE, so the plugin's writes stop ("drain" never comes). It
 * resumes once the reader took the queue below half. 64 KiB: node:http2's
 * own readable high-water mark is 16 KiB, and a socket read brings up to
 * 64 KiB; a 16-byte stream pauses about once per 3,000 messages queued.
 */
export const HIGH_WATER = 64 * 1024;

/** Where EnvelopeSplitter hands each whole envelope. */
export interface EnvelopeSink {
  /** One whole envelope: its flags byte and its payload (a copy of its own). */
  envelope(flags: number, data: Uint8Array): void;
  /** True once the call is over: the rest of a chunk is not split. */
  readonly finished: boolean;
}

/**
 * Splits a stream's body into enveloped messages (1 flags byte, a 4-byte
 * big-endian length, the payload: gRPC's, gRPC-web's and Connect's stream
 * framing) as its chunks arrive. Each payload is copied once into its own
 * buffer (copyInto), so that bytes fields never pin node's chunks; an
 * envelope that goes on in a later chunk grows with its bytes
 * (EnvelopePart), never sized by the peer's announcement alone. An
 * announcement over readMaxBytes throws connect-es' ResourceExhausted
 * error (envelopeSize). One splitter per stream direction.
 */
export class EnvelopeSplitter {
  /** An envelope begun in an earlier chunk. */
  private part: EnvelopePart | undefined;

  constructor(
    private readonly sink: EnvelopeSink,
    private readonly readMaxBytes: number,
  ) {}

  /** True while an envelope begun in an earlier chunk waits for the rest: a body ending now is cut. */
  get partial(): boolean {
    return this.part !== undefined;
  }

  /** One chunk: its whole envelopes handed to the sink in order, a partial one kept. Throws on an announcement over the limit. */
  push(chunk: Uint8Array): void {
    const sink = this.sink;
    let at = this.part === undefined ? 0 : this.continuePart(chunk);
    const n = chunk.length;
    while (at < n && !sink.finished) {
      if (n - at < 5) {
        this.part = new EnvelopePart(chunk.subarray(at));
        return;
      }
      const size = envelopeSize(chunk, at, this.readMaxBytes);
      const end = at + 5 + size;
      if (end > n) {
        this.part = new EnvelopePart(chunk.subarray(at), size);
        return;
      }
      const data = new Uint8Array(size);
      copyInto(data, 0, chunk, at + 5, size);
      sink.envelope(chunk[at] as number, data);
      at = end;
    }
  }

  /** Fills the kept envelope from `chunk`; returns where the chunk's own envelopes begin. */
  private continuePart(chunk: Uint8Array): number {
    const part = this.part as EnvelopePart;
    const at = part.fill(chunk, this.readMaxBytes);
    // connect-es' ResourceExhausted error for the head's announcement.
    if (part.over) envelopeSize(part.bytes(), 0, this.readMaxBytes);
    if (part.whole) {
      this.part = undefined;
      const bytes = part.bytes();
      this.sink.envelope(bytes[0] as number, bytes.subarray(5));
    }
    return at;
  }
}
