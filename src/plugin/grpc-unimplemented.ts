import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import type { NodeHandler } from "../transport/node-adapter.js";

/**
 * Answers a request that matches no route. A gRPC client gets what a gRPC
 * server sends: a trailers-only response with grpc-status 12
 * (Unimplemented), worded like grpc-go's ("unknown service X", "unknown
 * method M for service X"). The adapter's default, a bare HTTP 404, reads
 * as "Internal: server closed the stream without sending trailers" to
 * grpc-go. Every other request (the Connect protocol, plain HTTP) keeps
 * that 404, which is the Connect protocol's own answer for Unimplemented.
 *
 * `services` lists the fully-qualified services served, read per request.
 */
export function unimplementedFallback(services: () => ReadonlySet<string>): NodeHandler {
  return (req, res) => {
    const contentType = req.headers["content-type"] ?? "";
    if (!/^application\/grpc(?:[+;-]|$)/.test(contentType)) {
      res.writeHead(404);
      res.end();
      return;
    }
    const [, service = "", method = ""] = /^\/([^/]*)\/([^/?]*)/.exec(req.url ?? "") ?? [];
    const message = services().has(service)
      ? `unknown method ${method} for service ${service}`
      : `unknown service ${service}`;
    const headers = {
      ":status": 200,
      "content-type": contentType,
      "grpc-status": "12",
      "grpc-message": percentEncode(message),
    };
    // Over HTTP/2, trailers-only means one HEADERS frame that ends the stream.
    // Headers set on the response before us (CORS) go in the same frame.
    const stream = (res as Http2ServerResponse).stream as Http2ServerResponse["stream"] | undefined;
    if (stream !== undefined) {
      stream.respond({ ...res.getHeaders(), ...headers }, { endStream: true });
      return;
    }
    const { ":status": status, ...rest } = headers;
    (res as ServerResponse).writeHead(status, rest);
    res.end();
  };
}

/** The grpc-message encoding: percent-encodes bytes outside printable ASCII, and "%". */
function percentEncode(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
