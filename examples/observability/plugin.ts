/**
 * The KV example plugin with tracing and metrics: every call is a server
 * span continuing the host's trace, Get logs a line that carries its trace
 * and span ids, and in network mode (CONNECT_PLUGIN_LISTEN) the plugin's
 * own port answers GET /metrics.
 */
import { pluginLog, serve, implement } from "../../src/plugin.js";
import { prometheusMetrics, serverObservability } from "../../src/observability.js";
import { MemoryKV } from "../kv/memory-kv.js";
import { KV, handshake } from "../kv/shared.js";
import type { GetRequest } from "../kv/gen/example/kv/v1/kv_pb.js";
import { startTracing } from "./telemetry.js";

const tracing = startTracing("kv-plugin");
const metrics = await prometheusMetrics();

class LoggedKV extends MemoryKV {
  override get(req: GetRequest) {
    pluginLog("info", "get", { key: req.key });
    return super.get(req);
  }
}

const handle = await serve(
  { handshake, plugins: { kv: implement(KV, new LoggedKV()) } },
  {
    interceptors: [serverObservability({ meterProvider: metrics.meterProvider })],
    metrics: metrics.handler,
    exitProcess: false,
  },
);
await handle.done;
await tracing.shutdown();
process.exit(0);
