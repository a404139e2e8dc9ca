/**
 * `node dist/bench/observability-micro.js [--baseline DIR]`: the CPU cost of
 * the observability interceptors alone, in one process, without a
 * transport: a host interceptor, a copy of the headers (what the wire
 * does), a plugin interceptor and an echo handler, per call. The
 * OpenTelemetry set-up is the bench's "unsampled+metrics" (a registered
 * Node tracer provider with ParentBased(TraceIdRatioBased(0)), a
 * MeterProvider with the Prometheus reader). Chains, interleaved in
 * shuffled rounds: none; this build's interceptors; `--baseline`'s
 * (another build's dist/src); and the "sdk floor" (observability-floor.ts:
 * the same OpenTelemetry calls and nothing else). Prints the median CPU ns per
 * call with [min–max] over rounds; `--only NAME` keeps that chain and
 * "none", to profile it alone (`node --cpu-prof`). Asserts nothing.
 */
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import type { Interceptor, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import type * as Observability from "../src/observability.js";
import { floorInterceptor } from "./observability-floor.js";
import { lib, setUp } from "./observability-sdk.js";
import { Bench } from "./service.js";
import { median, round } from "./stats.js";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const CALLS = Number(arg("--calls") ?? 100_000);
const ROUNDS = Number(arg("--rounds") ?? 7);

const setup = await setUp("unsampled+metrics");
void setup; // the registrations are what matters
const metrics = await (
  (await import(`${lib}/observability.js`)) as typeof Observability
).prometheusMetrics();
const meterProvider = metrics.meterProvider;

type Call = (req: UnaryRequest) => Promise<UnaryResponse>;
const method = Bench.method.echo;
const message = create(BytesValueSchema, { value: new Uint8Array(16) });

function chain(client: Interceptor[], server: Interceptor[]): Call {
  const handler: Call = (req) =>
    Promise.resolve({
      stream: false,
      service: Bench,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: req.message,
    } as UnaryResponse);
  const plugin = server.reduceRight((next, i) => i(next as never) as Call, handler);
  // The wire: the plugin sees a copy of the host's headers.
  const wire: Call = (req) => plugin({ ...req, header: new Headers(req.header) });
  return client.reduceRight((next, i) => i(next as never) as Call, wire);
}

const signal = new AbortController().signal;
function request(): UnaryRequest {
  return {
    stream: false,
    service: Bench,
    method,
    requestMethod: "POST",
    url: "framed:///bench.v1.BenchService/Echo",
    signal,
    header: new Headers(),
    contextValues: undefined as never,
    message,
  };
}

async function build(dir: string): Promise<[Interceptor[], Interceptor[]]> {
  const o = (await import(`${dir}/observability.js`)) as typeof Observability;
  return [[o.clientObservability({ meterProvider })], [o.serverObservability({ meterProvider })]];
}

const chains: [string, Call][] = [
  ["none", chain([], [])],
  ["this build", chain(...(await build(lib)))],
  [
    "sdk floor",
    chain([floorInterceptor("client", meterProvider)], [floorInterceptor("server", meterProvider)]),
  ],
];
const baseline = arg("--baseline");
if (baseline !== undefined) chains.push(["baseline", chain(...(await build(baseline)))]);
// `--only NAME`: that chain and "none" (to profile one chain alone).
const only = arg("--only");
if (only !== undefined)
  chains.splice(0, chains.length, ...chains.filter(([n]) => n === "none" || n === only));

/** CPU ns per call (CPU, not wall-clock time: the machine may be shared). */
async function measure(call: Call, n: number): Promise<number> {
  const t = process.cpuUsage();
  for (let i = 0; i < n; i++) await call(request());
  const used = process.cpuUsage(t);
  return ((used.user + used.system) * 1_000) / n;
}

for (const [, call] of chains) await measure(call, 20_000); // warm-up
const ns = new Map<string, number[]>(chains.map(([name]) => [name, []]));
for (let r = 0; r < ROUNDS; r++) {
  const order = [...chains].sort(() => Math.random() - 0.5);
  for (const [name, call] of order) ns.get(name)?.push(await measure(call, CALLS));
}
await metrics.shutdown();
await setup.shutdown();

const none = median(ns.get("none") ?? []);
console.log(`${ROUNDS} rounds × ${CALLS} calls, unsampled tracing + metrics on both sides`);
console.log("| chain | CPU ns per call [min–max] | over none |");
console.log("|---|---|---|");
for (const [name] of chains) {
  const xs = ns.get(name) ?? [];
  console.log(
    `| ${name} | ${round(median(xs))} [${round(Math.min(...xs))}–${round(Math.max(...xs))}] | ` +
      `${name === "none" ? "—" : `+${round(median(xs) - none)} ns`} |`,
  );
}
