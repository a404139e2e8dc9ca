/**
 * Services for hosting several plugins in one Node process
 * (bench/plugin-memory.ts): service k is `spin<k>.v1.SpinService`, distinct
 * per k as separate plugins' services would be, declared at run time like
 * bench/service.ts.
 *
 *   rpc Echo(google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
 *   rpc Spin(google.protobuf.Int64Value) returns (google.protobuf.Int64Value);
 *
 * Spin(ms) keeps the event loop busy for `ms` milliseconds, as a plugin with
 * a CPU-bound or stuck handler would; Spin(-1) throws from a timer, outside
 * any call, as a plugin with an uncaught exception would (its process ends).
 */
import { create, createFileRegistry } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import type { BytesValueSchema, Int64ValueSchema } from "@bufbuild/protobuf/wkt";
import { FileDescriptorProtoSchema, file_google_protobuf_wrappers } from "@bufbuild/protobuf/wkt";
import type { HandshakeConfig, PluginDefinition, PluginImplementation } from "../src/plugin.js";
import { implement } from "../src/plugin.js";

export type SpinService = GenService<{
  echo: { methodKind: "unary"; input: typeof BytesValueSchema; output: typeof BytesValueSchema };
  spin: { methodKind: "unary"; input: typeof Int64ValueSchema; output: typeof Int64ValueSchema };
}>;

export function spinService(k: number): SpinService {
  const pkg = `spin${k}.v1`;
  const file = create(FileDescriptorProtoSchema, {
    name: `${pkg.replace(".", "/")}/spin.proto`,
    package: pkg,
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    service: [
      {
        name: "SpinService",
        method: [
          {
            name: "Echo",
            inputType: ".google.protobuf.BytesValue",
            outputType: ".google.protobuf.BytesValue",
          },
          {
            name: "Spin",
            inputType: ".google.protobuf.Int64Value",
            outputType: ".google.protobuf.Int64Value",
          },
        ],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) =>
    name === file_google_protobuf_wrappers.proto.name ? file_google_protobuf_wrappers : undefined,
  );
  const service = registry.getService(`${pkg}.SpinService`);
  if (service === undefined) throw new Error(`${pkg}.SpinService missing from its registry`);
  return service as unknown as SpinService;
}

export const spinHandshake: HandshakeConfig = {
  magicCookieKey: "SPIN_PLUGIN",
  magicCookieValue: "spin",
  protocolVersion: 1,
};

/** Plugin names: "p0", "p1", ... */
export const spinName = (k: number): string => `p${k}`;

/** `count` spin plugins in one plugin set, to be served by one process. */
export function spinPlugins(count: number): PluginDefinition {
  const plugins: Record<string, PluginImplementation> = {};
  for (let k = 0; k < count; k++) {
    plugins[spinName(k)] = implement(spinService(k), {
      echo: (req) => req,
      spin: (req) => {
        const ms = Number(req.value);
        if (ms < 0) {
          setTimeout(() => {
            throw new Error(`plugin ${spinName(k)} crashed (Spin(-1))`);
          }, 10);
          return req;
        }
        const end = performance.now() + ms;
        while (performance.now() < end); // busy: nothing else runs in this process
        return req;
      },
    });
  }
  return { handshake: spinHandshake, plugins };
}
