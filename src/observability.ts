/**
 * OpenTelemetry traces and metrics, and Prometheus exposition:
 * `import { clientObservability, serverObservability } from "connect-plugin/observability"`.
 *
 * Needs the optional peer `@opentelemetry/api`; with no OpenTelemetry SDK
 * registered, everything here is OpenTelemetry's no-op. See docs/observability.md.
 */
export {
  clientObservability,
  serverObservability,
  SCOPE,
  type ObservabilityOptions,
} from "./observability/call-observer.js";
export {
  semconvStability,
  type RpcSystem,
  type SemconvStability,
} from "./observability/semconv.js";
export {
  prometheusMetrics,
  PROMETHEUS_NAMES,
  type PrometheusMetrics,
} from "./observability/prometheus.js";
export { LifecycleMetrics, type EndpointState } from "./observability/lifecycle.js";
