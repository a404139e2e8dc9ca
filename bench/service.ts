/**
 * bench.v1.BenchService, declared at run time over protobuf's wrapper
 * messages, so that the benchmark needs no generated code. The Go contenders
 * declare the same service (go/bench/goplugin/shared).
 *
 *   rpc Echo(google.protobuf.BytesValue) returns (google.protobuf.BytesValue);
 *   rpc Stream(google.protobuf.Int64Value) returns (stream google.protobuf.BytesValue);
 *   rpc EchoStream(stream google.protobuf.BytesValue) returns (stream google.protobuf.BytesValue);
 *   rpc Collect(stream google.protobuf.BytesValue) returns (google.protobuf.Int64Value);
 *
 * (EchoStream and Collect, the bidi and client streams, only on the Node plugin.)
 */
import { create, createFileRegistry } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import type { ServiceImpl } from "@connectrpc/connect";
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
        {
          name: "EchoStream",
          inputType: ".google.protobuf.BytesValue",
          outputType: ".google.protobuf.BytesValue",
          clientStreaming: true,
          serverStreaming: true,
        },
        {
          name: "Collect",
          inputType: ".google.protobuf.BytesValue",
          outputType: ".google.protobuf.Int64Value",
          clientStreaming: true,
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
  echoStream: {
    methodKind: "bidi_streaming";
    input: typeof BytesValueSchema;
    output: typeof BytesValueSchema;
  };
  collect: {
    methodKind: "client_streaming";
    input: typeof BytesValueSchema;
    output: typeof Int64ValueSchema;
  };
}>;
if (Bench === undefined) throw new Error("bench.v1.BenchService missing from its registry");

export const benchHandshake: HandshakeConfig = {
  magicCookieKey: "BENCH_PLUGIN",
  magicCookieValue: "bench",
  protocolVersion: 1,
};

const small = new Uint8Array(16).fill(7);

/**
 * The bench service's handlers: echo, a stream of 16-byte messages, a bidi
 * echo, and the count of a client stream (for benchPlugin and the
 * observability bench's plugin).
 */
export const benchHandlers: ServiceImpl<typeof Bench> = {
  echo: (req) => req,
  // eslint-disable-next-line @typescript-eslint/require-await -- a stream as fast as it goes
  async *stream(req) {
    const n = Number(req.value);
    const msg = create(BytesValueSchema, { value: small });
    for (let i = 0; i < n; i++) yield msg;
  },
  async *echoStream(requests) {
    for await (const req of requests) yield req;
  },
  async collect(requests) {
    let n = 0n;
    for await (const _ of requests) n++;
    return { value: n };
  },
};

/** The bench plugin (benchHandlers). */
export function benchPlugin(): PluginDefinition {
  return {
    handshake: benchHandshake,
    plugins: { bench: implement(Bench, benchHandlers) },
  };
}
