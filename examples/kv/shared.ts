/**
 * What the KV host and the KV plugin share: the handshake and the service.
 * In a real project this is a small package both depend on.
 */
import type { HandshakeConfig } from "../../src/index.js";
export { KV } from "./gen/example/kv/v1/kv_pb.js";

export const handshake: HandshakeConfig = {
  magicCookieKey: "KV_PLUGIN",
  magicCookieValue: "hello",
  protocolVersion: 1,
};
