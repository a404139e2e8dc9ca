import type { Interceptor, Transport } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport as createConnect } from "@connectrpc/connect/protocol-connect";
import { createTransport as createGrpc } from "@connectrpc/connect/protocol-grpc";
import { createTransport as createGrpcWeb } from "@connectrpc/connect/protocol-grpc-web";
import { defaultCompressions } from "./compression.js";
import { connectUnaryWire } from "./connect-unary-client.js";
import { grpcUnaryWire } from "./grpc-unary-client.js";
import { grpcWebUnaryWire } from "./grpc-web-unary-client.js";
import { H1Pool } from "./h1-pool.js";
import { H1Target } from "./h1-target.js";
import { H2Session } from "./h2-session.js";
import { H2Target } from "./h2-target.js";
import {
  connectStreamWire,
  grpcStreamWire,
  grpcWebStreamWire,
  type StreamWire,
} from "./stream-wire.js";
import type * as http2 from "node:http2";
import type { UnaryClientWire } from "./unary-client-wire.js";
import { reachableTimeout } from "./deadline.js";
import { CallRunner } from "./run-call.js";

/** The RPC protocol spoken on the wire. Our servers answer all three. */
export type RpcProtocol = "connect" | "grpc" | "grpc-web";

interface ProtocolOptions {
  baseUrl: string;
  interceptors?: Interceptor[];
  readMaxBytes?: number;
  writeMaxBytes?: number;
  callHeaders?: readonly (readonly [string, string])[];
}

/**
 * A client transport for `protocol` over `http` (an HTTP/2 session,
 * HTTP/1.1 connections for Connect and gRPC-web: gRPC needs HTTP/2, or an
 * HTTP client for connect-es), with the defaults of connect-es' Node
 * transports: binary protobuf, gzip and Brotli accepted (never sent),
 * messages up to 4 GiB unless limited.
 *
 * Every call over an H2Session or an H1Pool runs on the project's
 * CallRunner, with an H2Target or an H1Target, both on the same wires
 * (every call on its lean path, interceptors applied once, by the runner,
 * no envelope sized by the plugin's announcement). Over a connect-es HTTP
 * client (a UniversalClientFn: no transport of ours, the differential
 * tests' reference over h2-client.ts) it is connect-es' own transport.
 * `callHeaders` are set after the interceptors on every one of these paths.
 */
export function createProtocolTransport(
  protocol: RpcProtocol,
  http: H2Session | H1Pool | UniversalClientFn,
  options: ProtocolOptions,
): Transport {
  if (typeof http === "function") return referenceTransport(protocol, http, options);
  if (protocol === "grpc" && http instanceof H1Pool) {
    throw new TypeError('the gRPC protocol needs HTTP/2; use httpVersion "2"');
  }
  const limits = validateReadWriteMaxBytes(options.readMaxBytes, options.writeMaxBytes, undefined);
  const fixed = options.callHeaders ?? [];
  const [plain, streams] = wires(protocol, fixed);
  const wire = fixed.length === 0 ? plain : withCallHeaders(plain, fixed);
  return new CallRunner(
    http instanceof H2Session
      ? new H2Target(http, options.baseUrl, wire, limits, streams)
      : new H1Target(http, options.baseUrl, wire, limits, streams),
    options.interceptors,
  );
}

/** The unary and stream wires of `protocol`. */
function wires(
  protocol: RpcProtocol,
  fixed: readonly (readonly [string, string])[],
): [UnaryClientWire, StreamWire] {
  switch (protocol) {
    case "connect":
      return [connectUnaryWire, connectStreamWire(fixed)];
    case "grpc":
      return [grpcUnaryWire, grpcStreamWire(fixed)];
    case "grpc-web":
      return [grpcWebUnaryWire, grpcWebStreamWire(fixed)];
  }
}

/** Sets `fixed` on a copy of every request's headers. */
function setHeaders(fixed: readonly (readonly [string, string])[]): Interceptor {
  return (next) => (req) => {
    const header = new Headers(req.header);
    for (const [k, v] of fixed) header.set(k, v);
    return next({ ...req, header });
  };
}

/**
 * `wire` with `fixed` set over every request's headers: a shared frozen
 * object (a call without headers of its caller's) gets a frozen copy of its
 * own, made once; a fresh one is changed in place.
 */
function withCallHeaders(
  wire: UnaryClientWire,
  fixed: readonly (readonly [string, string])[],
): UnaryClientWire {
  const copies = new WeakMap<object, http2.OutgoingHttpHeaders>();
  const set = (out: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders => {
    for (const [k, v] of fixed) out[k] = v;
    return out;
  };
  return {
    ...wire,
    requestHeaders(path, header, timeoutMs) {
      const out = wire.requestHeaders(path, header, timeoutMs);
      if (!Object.isFrozen(out)) return set(out);
      let copy = copies.get(out);
      if (copy === undefined) copies.set(out, (copy = Object.freeze(set({ ...out }))));
      return copy;
    },
  };
}

/**
 * connect-es' transport for `protocol` over `httpClient` (see
 * createProtocolTransport), `callHeaders` set last, after the caller's
 * interceptors.
 */
function referenceTransport(
  protocol: RpcProtocol,
  httpClient: UniversalClientFn,
  options: ProtocolOptions,
): Transport {
  const common = {
    httpClient,
    baseUrl: options.baseUrl,
    useBinaryFormat: true,
    interceptors: [
      ...(options.interceptors ?? []),
      ...(options.callHeaders !== undefined && options.callHeaders.length > 0
        ? [setHeaders(options.callHeaders)]
        : []),
    ],
    acceptCompression: defaultCompressions,
    sendCompression: null,
    ...validateReadWriteMaxBytes(options.readMaxBytes, options.writeMaxBytes, undefined),
  };
  return withReachableTimeouts(connectEsProtocol(protocol, common));
}

/**
 * connect-es' transport with the timeouts it is given made reachable
 * (see reachableTimeout): its deadline timer would overflow on one beyond
 * 24.8 days and fail the call after 1 ms.
 */
export function withReachableTimeouts(transport: Transport): Transport {
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.unary(method, signal, reachableTimeout(timeoutMs), header, input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, reachableTimeout(timeoutMs), header, input, contextValues),
  };
}

function connectEsProtocol(
  protocol: RpcProtocol,
  common: Parameters<typeof createConnect>[0],
): Transport {
  switch (protocol) {
    case "connect":
      return createConnect(common);
    case "grpc":
      return createGrpc(common);
    case "grpc-web":
      return createGrpcWeb(common);
  }
}
