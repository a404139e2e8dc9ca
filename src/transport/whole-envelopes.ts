import { EnvelopePart } from "./envelope-part.js";
import { UPFRONT_BYTES } from "./growing-bytes.js";
import { announcedSize, broken, incompleteEnvelope } from "./unary-body.js";

/**
 * An enveloped request body (gRPC, binary gRPC-web, Connect streams) as
 * connect-es' handlers are given it, passed on in whole envelopes only.
 *
 * Why: connect-es' envelope reader (createEnvelopeDecoder) allocates a
 * message's announced size as soon as its 5-byte head is in, and fails a
 * cut body only at its end. A peer that announces readMaxBytes (4 GiB by
 * default) and sends 15 bytes made the plugin allocate that much, open
 * request or whole. Held back here, an envelope goes on once all of its
 * bytes came. The envelopes that lie whole in one chunk go on as a view of
 * it (no copy); one that spans chunks is copied into its own buffer as its
 * bytes arrive (EnvelopePart, as EnvelopeSplitter keeps it on the lean
 * paths) and goes on as one piece. So memory follows the bytes received,
 * not the number of chunks they came in, and connect-es' reader, which
 * passes over every piece it holds for each new one, gets each envelope in
 * one or two pieces: 32 KiB given in 1-byte pieces took it 7 s as 32,773
 * of them.
 *
 * connect-es answers the same: a body that ends inside an envelope fails
 * at its end with connect-es' own error for it (incompleteEnvelope), after
 * the whole envelopes before it; an announcement over readMaxBytes is
 * passed on at once, with everything after it, for connect-es to refuse
 * before it allocates. Errors of `body` (a reset) go on as they are.
 */
export async function* wholeEnvelopes(
  body: AsyncIterable<Uint8Array>,
  readMaxBytes: number,
): AsyncGenerator<Uint8Array> {
  /** An envelope begun in an earlier chunk. */
  let part: EnvelopePart | undefined;
  /** Set by an announcement over readMaxBytes: connect-es refuses it, and reads the rest as it comes. */
  let passing = false;
  for await (const chunk of body) {
    if (passing) {
      yield chunk;
      continue;
    }
    const n = chunk.length;
    let at = 0;
    if (part !== undefined) {
      at = part.fill(chunk, readMaxBytes);
      if (part.over) {
        const head = part.bytes();
        passing = true;
        part = undefined;
        yield head;
        yield chunk.subarray(at);
        continue;
      }
      if (!part.whole) continue;
      const whole = part.bytes();
      part = undefined;
      yield whole;
    }
    // The envelopes that lie whole in this chunk from `at`: one view of it.
    let end = at;
    let size = -1;
    while (n - end >= 5) {
      size = announcedSize(chunk, end);
      if (size > readMaxBytes) {
        passing = true;
        break;
      }
      if (end + 5 + size > n) break;
      end += 5 + size;
      size = -1;
    }
    if (passing) {
      yield at === 0 ? chunk : chunk.subarray(at);
      continue;
    }
    if (end > at) yield at === 0 && end === n ? chunk : chunk.subarray(at, end);
    // The start of an envelope that goes on in a later chunk.
    if (end < n) part = new EnvelopePart(chunk.subarray(end), size < 0 ? undefined : size);
  }
  // Inside an envelope (its head or its payload): the body was cut.
  if (part !== undefined) throw incompleteEnvelope();
}

/**
 * True for the content types whose bodies connect-es reads as envelopes:
 * gRPC and binary gRPC-web (`application/grpc…`, but not gRPC-web-text,
 * whose envelopes are inside base64), and Connect streams
 * (`application/connect+…`). Matched loosely: a type connect-es refuses
 * is never read as envelopes anyway.
 */
export function enveloped(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const t = contentType.toLowerCase();
  return (
    (t.startsWith("application/grpc") && !t.startsWith("application/grpc-web-text")) ||
    t.startsWith("application/connect+")
  );
}

/**
 * The Content-Length of a request whose body is not enveloped (a Connect
 * unary call), when connect-es' handler would allocate it before any of
 * the body came: connect-es' readAllBytes makes its buffer at once from a
 * length within readMaxBytes (a larger one it refuses at once, and one up
 * to UPFRONT_BYTES is allowed up front, as on the lean paths). Parsed as
 * connect-es parses it (parseLengthHint).
 */
export function upfrontLength(
  contentLength: string | undefined,
  readMaxBytes: number,
): number | undefined {
  if (contentLength === undefined) return undefined;
  const n = parseInt(contentLength, 10);
  return Number.isSafeInteger(n) && n > UPFRONT_BYTES && n <= readMaxBytes ? n : undefined;
}

/**
 * Makes `header`'s Content-Length unseen by connect-es' body reader (its
 * own `get` answers null for it), while everything that copies the
 * headers (the handler context's requestHeader, by iterating) still gets
 * it: so readAllBytes gathers the body as it comes, and `promised` makes
 * its Content-Length checks.
 */
export function hideLength(header: Headers): void {
  const get = header.get.bind(header);
  Object.defineProperty(header, "get", {
    value: (name: string) => (name.toLowerCase() === "content-length" ? null : get(name)),
  });
}

/**
 * `body` with connect-es' readAllBytes checks of a Content-Length of
 * `length`, with its errors: more bytes fail as soon as they come, fewer
 * at the end.
 */
export async function* promised(
  body: AsyncIterable<Uint8Array>,
  length: number,
): AsyncGenerator<Uint8Array> {
  let count = 0;
  for await (const chunk of body) {
    count += chunk.byteLength;
    if (count > length) throw broken(length, count);
    yield chunk;
  }
  if (count < length) throw broken(length, count);
}
