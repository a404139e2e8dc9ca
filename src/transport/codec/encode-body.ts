import type { BinaryWriteOptions, DescMessage } from "@bufbuild/protobuf";
import { MeasuredMessage } from "./measured-message.js";

/**
 * A unary HTTP/2 body: `message` serialized after `prefix` bytes the caller
 * fills in (gRPC's 5-byte envelope head, or 0), one buffer. Throws
 * connect-es' errors: "serialize binary: ..." (Internal) for a message that
 * cannot be serialized, and ResourceExhausted for one over `writeMaxBytes`
 * (the prefix not counted). Serves both ends of the lean HTTP/2 path: the
 * host's request (unary-client-wire.ts) and the plugin's answer
 * (unary-handler.ts).
 *
 * A flat message (flat-schema.ts) is written by FlatEncoder straight into
 * the buffer (measured-message.ts), the bytes toBinary would give: no
 * BinaryWriter, no reflection object and no copy of the result, which heap
 * sampling put at about 900 bytes of garbage per call
 * (docs/http2-client.md, session 12) and profiling at a tenth of the
 * plugin's CPU per 16-byte call (session 14). Any other message goes to
 * toBinary with `options`.
 */
export function encodeBody(
  desc: DescMessage,
  message: unknown,
  writeMaxBytes: number,
  prefix: number,
  options?: Partial<BinaryWriteOptions>,
): Uint8Array {
  measured.measure(desc, message, writeMaxBytes, options);
  return measured.take(prefix);
}

/**
 * A gRPC envelope's head (`flags`, big-endian `size`) into `buf` at `at`,
 * written by hand (no DataView): the 5 bytes an enveloped encodeBody
 * leaves before the message, or the head of a copied envelope.
 */
export function putEnvelopeHead(buf: Uint8Array, at: number, flags: number, size: number): void {
  buf[at] = flags;
  buf[at + 1] = size >>> 24;
  buf[at + 2] = (size >>> 16) & 0xff;
  buf[at + 3] = (size >>> 8) & 0xff;
  buf[at + 4] = size & 0xff;
}

/** One for all bodies: measure() and write() follow each other at once. */
const measured = new MeasuredMessage();
