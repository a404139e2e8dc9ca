/** BenchService for @grpc/grpc-js, with protobuf-es doing the (de)serialization. */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema, Int64ValueSchema } from "@bufbuild/protobuf/wkt";

export const grpcDefinition = {
  echo: {
    path: "/bench.v1.BenchService/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: Uint8Array) =>
      Buffer.from(toBinary(BytesValueSchema, create(BytesValueSchema, { value: m }))),
    requestDeserialize: (b: Buffer) => fromBinary(BytesValueSchema, b).value,
    responseSerialize: (m: Uint8Array) =>
      Buffer.from(toBinary(BytesValueSchema, create(BytesValueSchema, { value: m }))),
    responseDeserialize: (b: Buffer) => fromBinary(BytesValueSchema, b).value,
  },
  stream: {
    path: "/bench.v1.BenchService/Stream",
    requestStream: false,
    responseStream: true,
    requestSerialize: (n: number) =>
      Buffer.from(toBinary(Int64ValueSchema, create(Int64ValueSchema, { value: BigInt(n) }))),
    requestDeserialize: (b: Buffer) => Number(fromBinary(Int64ValueSchema, b).value),
    responseSerialize: (m: Uint8Array) =>
      Buffer.from(toBinary(BytesValueSchema, create(BytesValueSchema, { value: m }))),
    responseDeserialize: (b: Buffer) => fromBinary(BytesValueSchema, b).value,
  },
} as const;
