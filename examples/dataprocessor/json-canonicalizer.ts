import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { implement, type PluginDefinition } from "../../src/plugin.js";
import {
  ProcessDataResponseSchema,
  type ProcessDataRequest,
} from "./gen/example/dataprocessor/v1/processor_pb.js";
import { DataProcessor, handshake } from "./shared.js";

const sortKeys = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(sortKeys)
    : v !== null && typeof v === "object"
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([k, x]) => [k, sortKeys(x)]),
        )
      : v;

/**
 * A built-in DataProcessor (TypeScript, in the host's process): capability
 * "json-canonicalize" sorts object keys, with an indent from its config.
 */
export function jsonCanonicalizer(config: unknown): PluginDefinition {
  const indent = (config as { indent?: number } | undefined)?.indent ?? 0;
  return {
    handshake,
    plugins: {
      processor: implement(
        DataProcessor,
        {
          processData(req: ProcessDataRequest) {
            if (req.capability !== "json-canonicalize") {
              throw new ConnectError(
                `capability "${req.capability}" is not served here (this plugin serves json-canonicalize)`,
                Code.InvalidArgument,
              );
            }
            let parsed: unknown;
            try {
              parsed = JSON.parse(new TextDecoder().decode(req.input));
            } catch (e) {
              throw new ConnectError(
                `input is not JSON: ${(e as Error).message}`,
                Code.InvalidArgument,
              );
            }
            const output = new TextEncoder().encode(JSON.stringify(sortKeys(parsed), null, indent));
            return create(ProcessDataResponseSchema, { output, contentType: "application/json" });
          },
        },
        { version: "1.0.0", capabilities: ["json-canonicalize"] },
      ),
    },
  };
}

export const jsonCanonicalizerConfigSchema = {
  type: "object",
  additionalProperties: false,
  properties: { indent: { type: "integer", minimum: 0, maximum: 8 } },
} as const;
