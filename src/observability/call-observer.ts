import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import {
  context,
  metrics,
  propagation,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type MeterProvider,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type TracerProvider,
} from "@opentelemetry/api";
import { CallDurations, MessageSizes } from "./instruments.js";
import {
  MethodAttributes,
  semconvStability,
  type Outcome,
  type RpcSystem,
  type SemconvStability,
} from "./semconv.js";
import { registerLogContext } from "../logging/log-context.js";
import { signalBlind } from "../transport/signal-view.js";

/** Options of {@link clientObservability} and {@link serverObservability}. */
export interface ObservabilityOptions {
  /** Where spans go. Defaults to the global provider (a no-op until an SDK registers one). */
  readonly tracerProvider?: TracerProvider;
  /** Where metrics go. Defaults to the global provider (a no-op until an SDK registers one). */
  readonly meterProvider?: MeterProvider;
  /** Which RPC conventions to emit. Defaults to OTEL_SEMCONV_STABILITY_OPT_IN's choice ("old" when unset). */
  readonly semconv?: SemconvStability;
  /**
   * The RPC system a client reports. Defaults to "connect_rpc" (connect-plugin's
   * own protocols); "grpc" for go-plugin plugins. Servers read it from each
   * request's content type.
   */
  readonly rpcSystem?: RpcSystem;
  /**
   * Also record the encoded size of every request and response message,
   * streamed ones included (`rpc.{client,server}.{request,response}.size`),
   * and the messages per call (`rpc.{client,server}.{requests,responses}_per_rpc`).
   * Off by default: it encodes each message once more.
   */
  readonly messageSizes?: boolean;
}

/** The instrumentation scope name of spans and metrics. */
export const SCOPE = "connect-plugin";

const headerSetter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => carrier.set(key, value),
};
const headerGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: (carrier) => [...carrier.keys()],
};

/**
 * An interceptor for the host side (PluginClient's and GoPluginClient's
 * `interceptors`): a CLIENT span per call, following the OpenTelemetry RPC
 * conventions, with W3C `traceparent`/`tracestate` (whatever the global
 * propagator writes) added to the request headers, which every transport
 * carries; and the call-duration histogram. With no OpenTelemetry SDK
 * registered, the spans and instruments are OpenTelemetry's no-ops.
 */
export function clientObservability(options: ObservabilityOptions = {}): Interceptor {
  const o = new CallObserver("client", options);
  const system = options.rpcSystem ?? "connect_rpc";
  return signalBlind((next) => (req) => {
    if (!o.active()) return next(req);
    const attrs = o.attributes(req.method, system);
    const parent = context.active();
    const span = o.tracer.startSpan(attrs.name, attrs.start, parent);
    propagation.inject(trace.setSpan(parent, span), req.header, headerSetter);
    return o.run(span, attrs, req, next);
  });
}

/**
 * An interceptor for the plugin side (serve()'s `interceptors`): continues
 * the caller's trace from the request headers with a SERVER span, runs the
 * handler in its context (so that pluginLog() lines carry its trace and span
 * ids, and spans the handler starts are its children), and records the
 * server call-duration histogram.
 */
export function serverObservability(options: ObservabilityOptions = {}): Interceptor {
  const o = new CallObserver("server", options);
  registerLogContext(activeTraceIds);
  return signalBlind((next) => (req) => {
    if (!o.active()) return next(req);
    const attrs = o.attributes(req.method, systemOf(req.header));
    const parent = propagation.extract(context.active(), req.header, headerGetter);
    const span = o.tracer.startSpan(attrs.name, attrs.start, parent);
    const ctx = trace.setSpan(parent, span);
    return o.run(span, attrs, req, (r) => context.with(ctx, next, undefined, r));
  });
}

/**
 * What both sides share: the tracer, the histogram, attributes by method.
 * Exported for tests only.
 */
export class CallObserver {
  readonly tracer;
  private readonly provider: TracerProvider;
  private readonly durations: CallDurations;
  private readonly sizes: MessageSizes | undefined;
  private tracing = false;
  private checkedAt = -Infinity;
  private readonly stability: SemconvStability;
  private readonly kind: SpanKind;
  /** Bounded by the methods of the services served or dispensed, times three RPC systems. */
  private readonly byMethod = new Map<DescMethod, Map<RpcSystem, MethodAttributes>>();

  constructor(side: "client" | "server", options: ObservabilityOptions) {
    this.kind = side === "client" ? SpanKind.CLIENT : SpanKind.SERVER;
    this.stability = options.semconv ?? semconvStability();
    this.provider = options.tracerProvider ?? trace.getTracerProvider();
    this.tracer = this.provider.getTracer(SCOPE);
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE);
    this.durations = new CallDurations(meter, side, this.stability);
    this.sizes =
      options.messageSizes === true && this.durations.enabled
        ? new MessageSizes(meter, side, this.stability)
        : undefined;
  }

  /**
   * Whether calls need observing at all: metrics are on, or a tracer
   * provider is there (one given, or an SDK registered globally; checked at
   * most once a second until there is). Otherwise a call goes straight
   * through, and with no SDK the interceptor costs one check.
   */
  active(): boolean {
    if (this.tracing || this.durations.enabled) return true;
    const now = performance.now();
    if (now - this.checkedAt < 1_000) return false;
    this.checkedAt = now;
    const provider = this.provider;
    this.tracing =
      !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(SCOPE) !== undefined;
    return this.tracing;
  }

  attributes(method: DescMethod, system: RpcSystem): MethodAttributes {
    let bySystem = this.byMethod.get(method);
    if (bySystem === undefined) {
      bySystem = new Map<RpcSystem, MethodAttributes>();
      this.byMethod.set(method, bySystem);
    }
    let attrs = bySystem.get(system);
    if (attrs === undefined) {
      attrs = new MethodAttributes(
        this.stability,
        system,
        method.parent.typeName,
        method.name,
        this.kind,
      );
      bySystem.set(system, attrs);
    }
    return attrs;
  }

  /**
   * Runs the call; ends the span and records the duration when it settles,
   * or for a server stream when its last message has gone through. With
   * message sizes on, a unary message is measured when the call settles
   * (with its outcome), a streamed one as it passes (as a success: the code
   * is not known yet), and the counts per call when it ends.
   */
  run<Q extends ObservedRequest, R extends { stream: boolean }>(
    span: Span,
    attrs: MethodAttributes,
    req: Q,
    call: (req: Q) => Promise<R>,
  ): Promise<R> {
    const start = performance.now();
    const sizes = this.sizes;
    const tally = sizes === undefined ? undefined : { requests: req.stream ? 0 : 1, responses: 0 };
    const done = (error: unknown, response?: unknown): void => {
      const outcome = this.finish(span, attrs, start, error);
      if (sizes === undefined || tally === undefined) return;
      if (!req.stream) sizes.message(req.method, true, req.message, outcome);
      if (response !== undefined) {
        tally.responses++;
        sizes.message(req.method, false, response, outcome);
      }
      sizes.counts(tally.requests, tally.responses, outcome);
    };
    let pending: Promise<R>;
    try {
      pending = call(
        tally !== undefined && req.stream
          ? withMessage(
              req,
              this.counted(req.message as AsyncIterable<unknown>, req, true, attrs, tally),
            )
          : req,
      );
    } catch (error) {
      done(error);
      throw error;
    }
    return pending.then(
      (res) => {
        if (!res.stream) {
          done(undefined, (res as unknown as { message: unknown }).message);
          return res;
        }
        const stream = res as unknown as StreamResponse;
        const messages =
          tally === undefined
            ? stream.message
            : this.counted(stream.message, req, false, attrs, tally);
        return { ...stream, message: this.watch(messages, done) } as unknown as R;
      },
      (error: unknown) => {
        done(error);
        throw error;
      },
    );
  }

  /** Measures and counts each message of a stream as it passes. */
  private async *counted<T>(
    messages: AsyncIterable<T>,
    req: ObservedRequest,
    input: boolean,
    attrs: MethodAttributes,
    tally: { requests: number; responses: number },
  ): AsyncIterable<T> {
    for await (const message of messages) {
      if (input) tally.requests++;
      else tally.responses++;
      this.sizes?.message(req.method, input, message, attrs.ok);
      yield message;
    }
  }

  private async *watch<T>(
    messages: AsyncIterable<T>,
    done: (error: unknown) => void,
  ): AsyncIterable<T> {
    let failure: unknown;
    try {
      yield* messages;
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      done(failure);
    }
  }

  /** Ends the span, records the duration, and returns the call's outcome. */
  private finish(span: Span, attrs: MethodAttributes, start: number, error: unknown): Outcome {
    const ms = performance.now() - start;
    if (error === undefined) {
      this.durations.record(ms, attrs.ok);
      span.end();
      return attrs.ok;
    }
    const ce = ConnectError.from(error);
    const outcome = attrs.error(ce.code);
    this.durations.record(ms, outcome);
    if (span.isRecording()) {
      span.setAttributes(outcome.span);
      span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
    }
    span.end();
    return outcome;
  }
}

/** What the observer reads of a request. */
interface ObservedRequest {
  readonly stream: boolean;
  readonly method: DescMethod;
  readonly message: unknown;
}

/**
 * The request with other messages: a copy with the same prototype, so that
 * a lazily created signal (see transport/lazy-abort.ts) stays lazy.
 */
function withMessage<Q extends ObservedRequest>(req: Q, message: unknown): Q {
  return Object.assign(Object.create(Object.getPrototypeOf(req) as object) as Q, req, { message });
}

/** The RPC system of an incoming call, from its content type (framed calls have none: Connect's). */
function systemOf(header: Headers): RpcSystem {
  const type = header.get("content-type");
  if (type === null || !type.startsWith("application/grpc")) return "connect_rpc";
  return type.startsWith("application/grpc-web") ? "grpc_web" : "grpc";
}

/** The trace and span ids of the active span, for log lines; undefined outside one. */
function activeTraceIds(): Record<string, string> | undefined {
  const span = trace.getSpan(context.active());
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

export type { Context };
