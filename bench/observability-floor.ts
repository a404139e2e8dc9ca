/**
 * The "sdk floor" of the observability bench: interceptors that make the
 * same OpenTelemetry calls per call as clientObservability() and
 * serverObservability() with unsampled tracing and metrics (start a span
 * with the RPC attributes, inject or extract W3C trace context, enter the
 * span's context on the server, record one duration with a fixed attribute
 * set, end the span) and nothing else: no per-method attributes, no error
 * codes, no streams. What they cost is the SDK's own price of those calls,
 * which no instrumentation can avoid.
 */
import type { Interceptor } from "@connectrpc/connect";
import {
  context,
  metrics,
  propagation,
  SpanKind,
  trace,
  type MeterProvider,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";

const setter: TextMapSetter<Headers> = { set: (h, k, v) => h.set(k, v) };
const getter: TextMapGetter<Headers> = {
  get: (h, k) => h.get(k) ?? undefined,
  keys: (h) => [...h.keys()],
};
const NAME = "bench.v1.BenchService/Echo";
const ATTRS = {
  "rpc.system": "connect_rpc",
  "rpc.service": "bench.v1.BenchService",
  "rpc.method": "Echo",
};

export function floorInterceptor(
  side: "client" | "server",
  meterProvider: MeterProvider = metrics.getMeterProvider(),
): Interceptor {
  const tracer = trace.getTracer("bench-floor");
  const histogram = meterProvider.getMeter("bench-floor").createHistogram(`rpc.${side}.duration`);
  const options = {
    kind: side === "client" ? SpanKind.CLIENT : SpanKind.SERVER,
    attributes: ATTRS,
  };
  return (next) => async (req) => {
    const start = performance.now();
    let parent = context.active();
    if (side === "server") parent = propagation.extract(parent, req.header, getter);
    const span = tracer.startSpan(NAME, options, parent);
    const ctx = trace.setSpan(parent, span);
    if (side === "client") propagation.inject(ctx, req.header, setter);
    try {
      return side === "client" ? await next(req) : await context.with(ctx, next, undefined, req);
    } finally {
      histogram.record(performance.now() - start, ATTRS);
      span.end();
    }
  };
}
