import { Code, ConnectError } from "@connectrpc/connect";
import { EnvelopeSplitter, type EnvelopeSink } from "./envelope-split.js";
import { copyInto } from "./growing-bytes.js";

/**
 * A unary response body gathered into one buffer, with connect-es' checks
 * (its readAllBytes): a Content-Length above readMaxBytes fails at once, a
 * body that breaks its Content-Length fails, a body without one fails as
 * soon as it passes readMaxBytes. Chunks are copied once, into one buffer, at the end.
 */
export class BodyBytes {
  private readonly hint: number | undefined;
  /**
   * The chunks: the first apart, the rest in an array made only for a body
   * of several chunks (the usual one comes in one).
   */
  private first: Uint8Array | undefined;
  private rest: Uint8Array[] | undefined;
  private count = 0;

  constructor(
    private readonly readMaxBytes: number,
    lengthHint: string | null,
  ) {
    const n = lengthHint === null ? NaN : parseInt(lengthHint, 10);
    if (Number.isSafeInteger(n) && n >= 0) {
      if (n > readMaxBytes) throw tooLarge(readMaxBytes, n);
      this.hint = n;
    }
  }

  push(chunk: Uint8Array): void {
    this.count += chunk.byteLength;
    if (this.hint !== undefined) {
      if (this.count > this.hint) throw broken(this.hint, this.count);
    } else if (this.count > this.readMaxBytes) {
      throw tooLarge(this.readMaxBytes);
    }
    if (this.first === undefined) this.first = chunk;
    else if (this.rest === undefined) this.rest = [chunk];
    else this.rest.push(chunk);
  }

  /** Why the body is short of its Content-Length, if it is. */
  shortfall(): ConnectError | undefined {
    return this.hint !== undefined && this.count < this.hint
      ? broken(this.hint, this.count)
      : undefined;
  }

  /** The whole body. */
  end(): Uint8Array {
    const short = this.shortfall();
    if (short !== undefined) throw short;
    const all = new Uint8Array(this.count);
    if (this.first === undefined) return all;
    copyInto(all, 0, this.first, 0, this.first.byteLength);
    let offset = this.first.byteLength;
    if (this.rest !== undefined) {
      for (const chunk of this.rest) {
        all.set(chunk, offset);
        offset += chunk.byteLength;
      }
    }
    return all;
  }
}

/**
 * The body of a unary gRPC response: at most one enveloped message (5-byte
 * header, then the data), with connect-es' checks (its envelope decoder):
 * an envelope announcing more than readMaxBytes fails as soon as its header
 * is in; a second complete envelope is an extra message; a partial one at
 * the end is an incomplete envelope. Only the first envelope is kept.
 * connect-es parses the first message before it sees what follows, so a
 * message that cannot be parsed is the error reported, not the extra one.
 * The usual answer, one whole envelope in one chunk, is copied out at
 * once; any other body is split as a stream's is (EnvelopeSplitter, made
 * then).
 */
export class EnvelopeBody implements EnvelopeSink {
  /** Splits every body but one whole envelope in one chunk. */
  private splitter: EnvelopeSplitter | undefined;
  /**
   * The first complete envelope, its flags and data in two fields rather
   * than an Envelope object per call (read them with `flags` and `first`).
   */
  private firstFlags = 0;
  private firstData: Uint8Array | undefined;
  private extra = false;
  /** Every envelope is split (EnvelopeSink): a later one over readMaxBytes throws too. */
  readonly finished = false;

  constructor(private readonly readMaxBytes: number) {}

  push(chunk: Uint8Array): void {
    let splitter = this.splitter;
    if (splitter === undefined) {
      // The usual case: the whole first envelope in one chunk, copied out once.
      if (chunk.byteLength >= 5) {
        const length = envelopeSize(chunk, 0, this.readMaxBytes);
        if (chunk.byteLength === 5 + length) {
          // A fresh plain array, never a view of node's chunk (see BodyBytes.end()).
          const data = new Uint8Array(length);
          copyInto(data, 0, chunk, 5, length);
          this.envelope(chunk[0] as number, data);
          return;
        }
      }
      splitter = this.splitter = new EnvelopeSplitter(this, this.readMaxBytes);
    }
    splitter.push(chunk);
  }

  /** One whole envelope (EnvelopeSink): the first is kept, a later one is an extra message. */
  envelope(flags: number, data: Uint8Array): void {
    if (this.firstData === undefined) {
      this.firstFlags = flags;
      this.firstData = data;
    } else this.extra = true;
  }

  /**
   * The first complete envelope's data (undefined before one is in),
   * unchecked: read it before end(), as connect-es does.
   */
  get first(): Uint8Array | undefined {
    return this.firstData;
  }

  /** The first complete envelope's flags (0 before one is in). */
  get flags(): number {
    return this.firstFlags;
  }

  /**
   * Checks that the body held at most one whole envelope; returns its
   * data, or undefined for an empty body (a trailers-only answer).
   */
  end(): Uint8Array | undefined {
    if (this.extra) {
      throw new ConnectError(
        "protocol error: received extra output message for unary method",
        Code.Unimplemented,
      );
    }
    const short = this.shortfall();
    if (short !== undefined) throw short;
    return this.firstData;
  }

  /** Why the body ends inside an envelope, if it does. */
  shortfall(): ConnectError | undefined {
    return this.splitter?.partial === true ? incompleteEnvelope() : undefined;
  }
}

/**
 * The payload length an envelope's head announces (bytes `at + 1` to
 * `at + 4`, big-endian), within readMaxBytes: connect-es' check and error.
 */
export function envelopeSize(bytes: Uint8Array, at: number, readMaxBytes: number): number {
  const size = announcedSize(bytes, at);
  if (size > readMaxBytes) throw tooLarge(readMaxBytes, size);
  return size;
}

/** The payload length an envelope's head announces (bytes `at + 1` to `at + 4`, big-endian), unchecked. */
export function announcedSize(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at + 1] as number) * 0x1000000 +
      (((bytes[at + 2] as number) << 16) |
        ((bytes[at + 3] as number) << 8) |
        (bytes[at + 4] as number))) >>>
    0
  );
}

/** connect-es' error for a body that ends inside an envelope. */
export function incompleteEnvelope(): ConnectError {
  return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}

/** connect-es' assertReadMaxBytes error. */
export function tooLarge(readMaxBytes: number, size?: number): ConnectError {
  return new ConnectError(
    size === undefined
      ? `message size is larger than configured readMaxBytes ${readMaxBytes}`
      : `message size ${size} is larger than configured readMaxBytes ${readMaxBytes}`,
    Code.ResourceExhausted,
  );
}

/** connect-es' readAllBytes error for a body that breaks its Content-Length. */
export function broken(promised: number, received: number): ConnectError {
  return new ConnectError(
    `protocol error: promised ${promised} bytes, received ${received}`,
    Code.InvalidArgument,
  );
}
