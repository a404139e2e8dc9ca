import { announcedSize, incompleteEnvelope } from "./unary-body.js";

/**
 * An enveloped request body (gRPC, binary gRPC-web, Connect streams) as
 * connect-es' handlers are given it, passed on in whole envelopes only.
 *
 * Why: connect-es' envelope reader (createEnvelopeDecoder) allocates a
 * message's announced size as soon as its 5-byte head is in, and fails a
 * cut body only at its end. A peer that announces readMaxBytes (4 GiB by
 * default) and sends 15 bytes made the plugin allocate that much, open
 * request or whole. Held back here, an envelope goes on once all of its
 * bytes came, so memory follows the bytes received: chunks are held, not
 * copied, as connect-es' reader holds them too.
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
  /** Bytes after the last whole envelope (at most one envelope's). */
  let held: Uint8Array[] = [];
  /** The head being read (want < 0). */
  const head = new Uint8Array(5);
  let headFill = 0;
  /** Payload bytes the current envelope still needs; -1 while in a head. */
  let want = -1;
  /** Set by an announcement over readMaxBytes: connect-es refuses it, and reads the rest as it comes. */
  let passing = false;
  for await (const chunk of body) {
    if (passing) {
      yield chunk;
      continue;
    }
    const n = chunk.byteLength;
    /** Where the last whole envelope of this chunk ends; -1: none ends here. */
    let boundary = -1;
    for (let at = 0; ;) {
      if (want < 0) {
        const take = Math.min(5 - headFill, n - at);
        if (take > 0) head.set(chunk.subarray(at, at + take), headFill);
        headFill += take;
        at += take;
        if (headFill < 5) break;
        const size = announcedSize(head, 0);
        if (size > readMaxBytes) {
          passing = true;
          break;
        }
        want = size;
        headFill = 0;
      }
      const take = Math.min(want, n - at);
      want -= take;
      at += take;
      if (want > 0) break;
      want = -1;
      boundary = at;
      if (at === n) break;
    }
    if (passing) {
      yield* held;
      held = [];
      yield chunk;
    } else if (boundary < 0) {
      held.push(chunk);
    } else {
      const whole = held;
      held = boundary < n ? [chunk.subarray(boundary)] : [];
      yield* whole;
      yield boundary < n ? chunk.subarray(0, boundary) : chunk;
    }
  }
  // Inside an envelope (its head or its payload): the body was cut.
  if (!passing && (headFill > 0 || want >= 0)) throw incompleteEnvelope();
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
