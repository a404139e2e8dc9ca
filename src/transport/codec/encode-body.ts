import { toBinary, type BinaryWriteOptions, type DescMessage } from "@bufbuild/protobuf";
import { serializeError, tooLargeToWrite } from "./codec-errors.js";
import { FlatEncoder } from "./flat-encoder.js";

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
 * the buffer, the bytes toBinary would give: no BinaryWriter, no reflection
 * object and no copy of the result, which heap sampling put at about 900
 * bytes of garbage per call (docs/http2-client.md, session 12) and
 * profiling at a tenth of the plugin's CPU per 16-byte call (session 14).
 * Any other message, or one FlatEncoder cannot write exactly as toBinary
 * would, goes to toBinary with `options`.
 */
export function encodeBody(
  desc: DescMessage,
  message: unknown,
  writeMaxBytes: number,
  prefix: number,
  options?: Partial<BinaryWriteOptions>,
): Uint8Array {
  const encoder = FlatEncoder.of(desc);
  let size = -1;
  try {
    if (encoder !== undefined) size = encoder.measure(message);
  } catch (e) {
    // A getter of the message threw: toBinary would have thrown the same, read once.
    throw serializeError(e);
  }
  if (encoder !== undefined && size >= 0) {
    if (size > writeMaxBytes) {
      encoder.clear();
      throw tooLargeToWrite(size, writeMaxBytes);
    }
    // From node's pool, as the floor's client does; every byte is written.
    const body = Buffer.allocUnsafe(prefix + size);
    if (encoder.write(message, body, prefix) === body.length) return body;
    // Not reached (write() writes what measure() measured); if it ever
    // were, no uninitialized byte of the pool may go out: toBinary below.
  }
  let bytes: Uint8Array;
  try {
    bytes = toBinary(desc, message as never, options);
  } catch (e) {
    throw serializeError(e);
  }
  if (bytes.byteLength > writeMaxBytes) throw tooLargeToWrite(bytes.byteLength, writeMaxBytes);
  if (prefix === 0) return bytes;
  const body = new Uint8Array(prefix + bytes.byteLength);
  body.set(bytes, prefix);
  return body;
}
