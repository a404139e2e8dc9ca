/**
 * What the database-engine host and its plugins share: the handshake and
 * the contract. The Go plugins (go/cmd/dbengine-postgres, dbengine-sqlite)
 * use the same cookie.
 */
import type { HandshakeConfig } from "../../src/index.js";
export { DatabaseEngine } from "./gen/example/dbengine/v1/engine_pb.js";

export const handshake: HandshakeConfig = {
  magicCookieKey: "DBENGINE_PLUGIN",
  magicCookieValue: "schemahero",
  protocolVersion: 1,
};
