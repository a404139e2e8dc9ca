import type * as http2 from "node:http2";

/**
 * Serves an HTTP/2 stream straight from node:http2's "stream" event, before
 * node builds its compatibility objects (Http2ServerRequest and
 * Http2ServerResponse) for it. Returns true if it took the stream; false
 * leaves it untouched, and node's compatibility layer gives it to the
 * server's "request" listener as usual. `handOver` does that later, for a
 * stream it took but then finds it must not answer (it may have read part
 * of the body, and must have sent nothing). It must not throw once it has
 * touched the stream: a throw is taken to mean it has not.
 */
export type StreamClaim = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  handOver: () => void,
) => boolean;

/**
 * What a server says when claimStreams() cannot take its streams: the
 * answers stay the same, only slower, so it is a warning, but a node:http2
 * that changed how it serves "request" should not go unnoticed.
 */
export const STREAMS_UNCLAIMED_WARNING =
  "node:http2 does not serve 'request' from one 'stream' listener on this Node.js " +
  "version: unary calls go through its compatibility layer (the same answers, more CPU per call)";

/** The arguments of node:http2's "stream" event on a server. */
type StreamListener = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

/**
 * Lets `claim` see each stream of `server` before node's compatibility
 * layer does. node:http2 serves the "request" event from a "stream"
 * listener of its own, which it adds to the server when the first
 * "request" listener is added (lib/internal/http2/core.js, setupCompat;
 * it builds the compatibility objects, answers CONNECT and Expect, and
 * emits "request"). That listener is taken off the server here and called
 * for every stream `claim` does not take, so those streams, and HTTP/1.1
 * requests on an allowHTTP1 server, are served exactly as before.
 *
 * Call it once the server has its "request" listener. Returns false, and
 * changes nothing, if the server does not have exactly one "stream"
 * listener then (a node:http2 that works otherwise): every stream then
 * goes through the compatibility layer, as without this.
 */
export function claimStreams(
  server: http2.Http2Server | http2.Http2SecureServer,
  claim: StreamClaim,
): boolean {
  const listeners = server.listeners("stream");
  const compat = listeners[0] as StreamListener | undefined;
  if (listeners.length !== 1 || compat === undefined || server.listenerCount("request") === 0) {
    return false;
  }
  server.removeListener("stream", compat);
  server.on(
    "stream",
    (
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      flags: number,
      rawHeaders: string[],
    ) => {
      const toCompat = (): void => compat.call(server, stream, headers, flags, rawHeaders);
      let claimed: boolean;
      try {
        claimed = claim(stream, headers, toCompat);
      } catch {
        // The claim refused it by throwing (a malformed :authority makes no
        // URL): the compatibility path answers it (400, see http-server.ts).
        claimed = false;
      }
      if (!claimed) toCompat();
      // As node's compatibility request does: a stream's errors are not
      // thrown (a reset with an error code emits one), its close tells the call.
      else stream.on("error", ignore);
    },
  );
  return true;
}

function ignore(): void {}
