/** What DataProcessor hosts and plugins share: the handshake and the contract. */
import type { HandshakeConfig } from "../../src/index.js";
export { DataProcessor } from "./gen/example/dataprocessor/v1/processor_pb.js";

export const handshake: HandshakeConfig = {
  magicCookieKey: "DATAPROCESSOR_PLUGIN",
  magicCookieValue: "v1",
  protocolVersion: 1,
};

/** The config type of the CSV plugin (its manifest's configSchema). */
export const csvConfigSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    delimiter: { type: "string", minLength: 1, maxLength: 1 },
    header: { type: "boolean" },
  },
} as const;
