import { Code, ConnectError } from "@connectrpc/connect";

/**
 * connect-es' error for a message that cannot be serialized (a field of the
 * wrong type, a getter that throws): Internal, "serialize binary: ...". Every
 * path that encodes (HTTP/2 and framed, client and server) fails with it, so
 * the same bad message fails the same way wherever the plugin runs.
 */
export function serializeError(e: unknown): ConnectError {
  return new ConnectError(
    `serialize binary: ${e instanceof Error ? e.message : String(e)}`,
    Code.Internal,
  );
}

/** connect-es' error for a message that cannot be parsed: Internal, "parse binary: ...". */
export function parseError(e: unknown): ConnectError {
  return new ConnectError(
    `parse binary: ${e instanceof Error ? e.message : String(e)}`,
    Code.Internal,
  );
}

/** connect-es' error for a message over writeMaxBytes: ResourceExhausted. */
export function tooLargeToWrite(size: number, writeMaxBytes: number): ConnectError {
  return new ConnectError(
    `message size ${size} is larger than configured writeMaxBytes ${writeMaxBytes}`,
    Code.ResourceExhausted,
  );
}
