/**
 * What go-plugin's own examples (examples/grpc and examples/bidirectional)
 * agree on: the handshake and the services, from their .proto files copied
 * verbatim. A TypeScript plugin that uses these is launched by the
 * unmodified Go hosts of those examples, and a TypeScript host that uses
 * them launches the unmodified Go plugins.
 */
import type { HandshakeConfig } from "../../src/index.js";
export { KV } from "./gen/proto/kv_pb.js";
export { AddHelper, Counter } from "./gen/proto/counter_pb.js";

/** go-plugin's examples/grpc/shared.Handshake (and examples/bidirectional's). */
export const handshake: HandshakeConfig = {
  magicCookieKey: "BASIC_PLUGIN",
  magicCookieValue: "hello",
  protocolVersion: 1,
};
