import { Code } from "@connectrpc/connect";
import type { SpanKind } from "@opentelemetry/api";

/**
 * Which OpenTelemetry RPC conventions to emit, chosen as OpenTelemetry
 * specifies with OTEL_SEMCONV_STABILITY_OPT_IN: absent, the older set
 * (semconv 1.37 and before: `rpc.system=connect_rpc`, `rpc.service`,
 * `rpc.method`, `rpc.connect_rpc.error_code`, `rpc.client|server.duration`
 * in milliseconds) — the default; `rpc`, the stable-track set
 * (`rpc.system.name=connectrpc`, fully qualified `rpc.method`,
 * `rpc.response.status_code`, `error.type`, `rpc.client|server.call.duration`
 * in seconds); `rpc/dup`, both (it wins over `rpc`).
 */
export type SemconvStability = "old" | "stable" | "dup";

/** Reads OTEL_SEMCONV_STABILITY_OPT_IN (a comma-separated list) for the RPC category. */
export function semconvStability(
  env: string | undefined = process.env.OTEL_SEMCONV_STABILITY_OPT_IN,
): SemconvStability {
  const values = (env ?? "").split(",").map((v) => v.trim());
  if (values.includes("rpc/dup")) return "dup";
  if (values.includes("rpc")) return "stable";
  return "old";
}

/** The RPC system of a call, as the older and the stable conventions name it. */
export type RpcSystem = "connect_rpc" | "grpc" | "grpc_web";

const STABLE_SYSTEM: Record<RpcSystem, string> = {
  connect_rpc: "connectrpc",
  grpc: "grpc",
  // The stable conventions have no gRPC-web value: it is gRPC on the wire.
  grpc_web: "grpc",
};

/** Attribute values, as OpenTelemetry's API takes them. */
export type Attributes = Record<string, string | number>;

/** Connect's error code names ("not_found"), as rpc.connect_rpc.error_code uses them. */
export function connectCodeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** gRPC's status names ("NOT_FOUND"), as the stable rpc.response.status_code uses them for gRPC. */
function grpcCodeName(code: Code | 0): string {
  return code === 0 ? "OK" : connectCodeName(code).toUpperCase();
}

/** A call's outcome: the attributes added to its span, and per set its metric attributes. */
export interface Outcome {
  readonly span: Attributes;
  readonly old: Attributes;
  readonly stable: Attributes;
}

/**
 * The attributes of one method's spans and metric points under the chosen
 * conventions, computed once per method and outcome, so that a call only
 * looks them up: no attribute object is built per call, and the metrics SDK
 * always sees the same few sets (one per method and code). In "dup" mode
 * the span carries both sets; where they share a key (`rpc.method`), the
 * stable value wins.
 */
export class MethodAttributes {
  /** The span name: `{service}/{method}`. */
  readonly name: string;
  /** Attributes set when the span starts. */
  readonly span: Attributes;
  /** The options a span of this method starts with (its kind and `span`). */
  readonly start: { readonly kind: SpanKind; readonly attributes: Attributes };
  /** The outcome of a successful call. */
  readonly ok: Outcome;
  private readonly old: Attributes = {};
  private readonly stable: Attributes = {};
  private readonly failed = new Map<Code, Outcome>();

  constructor(
    readonly stability: SemconvStability,
    private readonly system: RpcSystem,
    service: string,
    method: string,
    kind: SpanKind,
  ) {
    this.name = `${service}/${method}`;
    if (stability !== "stable") {
      this.old["rpc.system"] = system;
      this.old["rpc.service"] = service;
      this.old["rpc.method"] = method;
    }
    if (stability !== "old") {
      this.stable["rpc.system.name"] = STABLE_SYSTEM[system];
      this.stable["rpc.method"] = `${service}/${method}`;
    }
    this.span = { ...this.old, ...this.stable };
    this.start = { kind, attributes: this.span };
    this.ok = this.outcome(undefined);
  }

  /** The outcome of a call that failed with `code`: one per code, made on first use. */
  error(code: Code): Outcome {
    let out = this.failed.get(code);
    if (out === undefined) {
      out = this.outcome(code);
      this.failed.set(code, out);
    }
    return out;
  }

  private outcome(code: Code | undefined): Outcome {
    const oldExtra: Attributes = {};
    const stableExtra: Attributes = {};
    if (this.stability !== "stable") {
      if (this.system !== "connect_rpc") oldExtra["rpc.grpc.status_code"] = code ?? 0;
      else if (code !== undefined) oldExtra["rpc.connect_rpc.error_code"] = connectCodeName(code);
    }
    if (this.stability !== "old") {
      if (this.system !== "connect_rpc")
        stableExtra["rpc.response.status_code"] = grpcCodeName(code ?? 0);
      else if (code !== undefined) stableExtra["rpc.response.status_code"] = connectCodeName(code);
      if (code !== undefined)
        stableExtra["error.type"] = stableExtra["rpc.response.status_code"] as string;
    }
    return {
      span: { ...oldExtra, ...stableExtra },
      old: { ...this.old, ...oldExtra },
      stable: { ...this.stable, ...stableExtra },
    };
  }
}

/** The names and units of the per-call metrics under each set. */
export const RPC_METRICS = {
  old: {
    client: { name: "rpc.client.duration", unit: "ms", scale: 1 },
    server: { name: "rpc.server.duration", unit: "ms", scale: 1 },
  },
  stable: {
    client: { name: "rpc.client.call.duration", unit: "s", scale: 1e-3 },
    server: { name: "rpc.server.call.duration", unit: "s", scale: 1e-3 },
  },
} as const;
