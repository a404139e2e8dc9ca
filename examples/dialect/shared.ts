/**
 * What the dialect host and its plugins (Go: go/cmd/dialect-go, Python:
 * examples/dialect/python/plugin.py) share: the handshake and the two
 * contracts, dispensed as "schema" and "query".
 */
import type { HandshakeConfig } from "../../src/index.js";
import { QueryTranslator, SchemaConverter } from "./gen/example/dialect/v1/dialect_pb.js";
export { QueryTranslator, SchemaConverter };

export const handshake: HandshakeConfig = {
  magicCookieKey: "SQLTRACEBENCH_PLUGIN",
  magicCookieValue: "dialect",
  protocolVersion: 1,
};

/** The host's plugin set: the same for the Go and the Python plugin. */
export const dialectPlugins = { schema: SchemaConverter, query: QueryTranslator };
