/**
 * bench.v1.BenchService, declared at run time over protobuf's wrapper
 * messages, so that the benchmark needs no generated code. The Go contenders
 * declare the same service (go/bench/goplugin/shared).
 *
 *   rpc Echo(google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
 *   rpc Stream(google.protobuf.Int64Value) returns (stream google.protobuf.BytesValue);
 */
import { create, createFileRegistry } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import type { Int64ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  BytesValueSchema,
  FileDescriptorProtoSchema,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import type { HandshakeConfig, PluginDefinition } from "../src/plugin.js";
import { implement } from "../src/plugin.js";

const file = create(FileDescriptorProtoSchema, {
  name: "bench/v1/bench.proto",
  package: "bench.v1",
  syntax: "proto3",
  dependency: ["google/protobuf/wrappers.proto"],
  service: [
    {
      name: "BenchService",
      method: [
        {
          name: "Echo",
          inputType: ".google.protobuf.BytesValue",
          outputType: ".google.protobuf.BytesValue",
        },
        {
          name: "Stream",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.BytesValue",
          serverStreaming: true,
        },
      ],
    },
  ],
});
const registry = createFileRegistry(file, (name) =>
  name === file_google_protobuf_wrappers.proto.name ? file_google_protobuf_wrappers : undefined,
);

export const Bench = registry.getService("bench.v1.BenchService") as unknown as GenService<{
  echo: { methodKind: "unary"; input: typeof BytesValueSchema; output: typeof BytesValueSchema };
  stream: {
    methodKind: "server_streaming";
    input: typeof Int64ValueSchema;
    output: typeof BytesValueSchema;
  };
}>;
if (Bench === undefined) throw new Error("bench.v1.BenchService missing from its registry");

export const benchHandshake: HandshakeConfig = {
  magicCookieKey: "BENCH_PLUGIN",
  magicCookieValue: "bench",
  protocolVersion: 1,
};

const small = new Uint8Array(16).fill(7);

/** The bench plugin: echo, and a stream of 16-byte messages. */
export function benchPlugin(): PluginDefinition {
  return {
    handshake: benchHandshake,
    plugins: {
      bench: implement(Bench, {
        echo: (req) => req,
        // eslint-disable-next-line @typescript-eslint/require-await -- a stream as fast as it goes
        async *stream(req) {
          const n = Number(req.value);
          const msg = create(BytesValueSchema, { value: small });
          for (let i = 0; i < n; i++) yield msg;
        },
      }),
    },
  };
}
