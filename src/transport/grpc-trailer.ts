import type { ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { isEmptyHeaders } from "./node-headers.js";

/**
 * The status trailer of a gRPC or gRPC-web call on the plugin's lean paths
 * (unary-wire.ts, stream-handler.ts), for both protocols: gRPC sends it as
 * HTTP/2 trailers, gRPC-web as the body's last envelope (flag 0x80,
 * `GRPC_WEB_TRAILER`); its fields are the same, as connect-es' two
 * handlers make them. gRPC's OK endings (unary-wire.ts sendGrpcMessage,
 * stream-handler.ts endGrpc) write the same fields, grpc-status 0 under
 * the handler's trailers, without the Headers copy made here.
 */

/** The flag of gRPC-web's trailer envelope (connect-es' trailerFlag, 0x80). */
export const GRPC_WEB_TRAILER: number = trailerFlag;

/**
 * The trailer of a call that ended with `error` (undefined: OK), over
 * what the handler set in `own`: connect-es' trailer starts with
 * grpc-status 0, and setTrailerStatus adds an error's metadata and
 * replaces the status.
 */
export function grpcTrailer(own: Headers, error: ConnectError | undefined): Headers {
  const trailer = new Headers(own);
  if (!trailer.has("grpc-status")) trailer.set("grpc-status", "0");
  if (error !== undefined) setTrailerStatus(trailer, error);
  return trailer;
}

/** The trailer envelope's payload of a call that ended OK with no trailer of its own. */
const OK_ONLY = trailerSerialize(new Headers({ "grpc-status": "0" }));

/**
 * gRPC-web's trailer envelope payload (connect-es' trailerSerialize: one
 * `name: value\r\n` line per field). A call that ended OK with no trailer
 * of its own (most) gets the same bytes every time, built once.
 */
export function grpcWebTrailer(own: Headers, error: ConnectError | undefined): Uint8Array {
  if (error === undefined && isEmptyHeaders(own)) return OK_ONLY;
  return trailerSerialize(grpcTrailer(own, error));
}
