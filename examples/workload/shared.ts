/**
 * What the workload host and its plugins share: the handshake, the contract,
 * and the configuration schema (the same one the Go plugin's manifest
 * carries), against which the host validates the configuration before the
 * plugin starts.
 */
import type { HandshakeConfig } from "../../src/index.js";
export { Workload } from "./gen/example/workload/v1/workload_pb.js";

export const handshake: HandshakeConfig = {
  magicCookieKey: "WORKLOAD_PLUGIN",
  magicCookieValue: "stormdb",
  protocolVersion: 1,
};

/** The plugin builds its own pool from this: a *sql.DB does not cross processes. */
export interface WorkloadConfig {
  readonly dsn: string;
  readonly table?: string;
  readonly maxConns?: number;
}

export const workloadConfigSchema = {
  type: "object",
  required: ["dsn"],
  additionalProperties: false,
  properties: {
    dsn: { type: "string", pattern: "^postgres(ql)?://" },
    table: { type: "string", pattern: "^[a-z_][a-z0-9_]*$" },
    maxConns: { type: "integer", minimum: 1, maximum: 64 },
  },
} as const;
