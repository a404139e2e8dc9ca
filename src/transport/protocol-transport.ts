import type { Interceptor, Transport } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport as createConnect } from "@connectrpc/connect/protocol-connect";
import { createTransport as createGrpc } from "@connectrpc/connect/protocol-grpc";
import { createTransport as createGrpcWeb } from "@connectrpc/connect/protocol-grpc-web";
import { defaultCompressions } from "./compression.js";

/** The RPC protocol spoken on the wire. Our servers answer all three. */
export type RpcProtocol = "connect" | "grpc" | "grpc-web";

/**
 * A connect-es client transport for `protocol` over `httpClient`, with the
 * defaults of connect-es' Node transports: binary protobuf, gzip and Brotli
 * accepted (never sent), messages up to 4 GiB unless limited.
 */
export function createProtocolTransport(
  protocol: RpcProtocol,
  httpClient: UniversalClientFn,
  options: {
    baseUrl: string;
    interceptors?: Interceptor[];
    readMaxBytes?: number;
    writeMaxBytes?: number;
  },
): Transport {
  const common = {
    httpClient,
    baseUrl: options.baseUrl,
    useBinaryFormat: true,
    interceptors: options.interceptors ?? [],
    acceptCompression: defaultCompressions,
    sendCompression: null,
    ...validateReadWriteMaxBytes(options.readMaxBytes, options.writeMaxBytes, undefined),
  };
  switch (protocol) {
    case "connect":
      return createConnect(common);
    case "grpc":
      return createGrpc(common);
    case "grpc-web":
      return createGrpcWeb(common);
  }
}
