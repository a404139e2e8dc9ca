/**
 * One contender of `npm run bench:observability`: a host process with one
 * mode's OpenTelemetry set-up (observability-sdk.ts) and a subprocess bench
 * plugin with the same, over the default transport (framed, unix socket,
 * AutoMTLS). Each mode runs in a process of its own, so that one mode's
 * global registrations (tracer provider, context manager, propagator)
 * cannot leak into another. The parent drives it over IPC: `{ unary: n }`
 * answers the per-call µs, `{ concurrent: ms }` the calls/s of 64 callers,
 * `{ close: true }` ends it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as Index from "../src/index.js";
import { connectOps, fromOps } from "./contenders.js";
import { lib, setUp, type Mode } from "./observability-sdk.js";
import { Bench, benchHandshake } from "./service.js";

export type Command = { unary: number } | { concurrent: number } | { close: true };
export type Answer =
  | { ready: true }
  | { samples: number[]; cpu: number }
  | { rate: number; cpu: number }
  | { closed: true };

const CALLERS = 64;
const mode = (process.env.BENCH_OBSERVE ?? "off") as Mode;
const setup = await setUp(mode);
const index = (await import(`${lib}/index.js`)) as typeof Index;
const client = new index.PluginClient({
  handshake: benchHandshake,
  plugins: { bench: Bench },
  source: index.subprocess(process.execPath, [
    ...process.execArgv,
    fileURLToPath(new URL("./observed-plugin.js", import.meta.url)),
  ]), // the plugin inherits BENCH_OBSERVE and BENCH_LIB
  logger: index.silentLogger,
  interceptors: setup.interceptors("client"),
});
await client.start();
const c = fromOps(mode, connectOps(client.dispense("bench")), () => client.close());
await c.unary(300, 16); // warm-up
await c.concurrent(300, CALLERS);

/**
 * CPU time used so far by this process and its children (the plugin), in
 * µs: on a shared machine, CPU per call is steadier than wall-clock time.
 * Children's from /proc (clock ticks of 10 ms, so measure for a while).
 */
function cpuMicros(): number {
  const own = process.cpuUsage();
  let children = 0;
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const ids = readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8").trim();
    for (const id of ids === "" ? [] : ids.split(" ")) {
      const stat = readFileSync(`/proc/${id}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      children += (Number(fields[11]) + Number(fields[12])) * 10_000; // utime + stime
    }
  }
  return own.user + own.system + children;
}

const send = (answer: Answer): void => void process.send?.(answer);
process.on("message", (command: Command) => {
  void (async () => {
    const cpu0 = cpuMicros();
    if ("unary" in command) {
      const samples = await c.unary(command.unary, 16);
      send({ samples, cpu: (cpuMicros() - cpu0) / command.unary });
    } else if ("concurrent" in command) {
      const t = performance.now();
      const rate = await c.concurrent(command.concurrent, CALLERS);
      const calls = (rate * (performance.now() - t)) / 1_000;
      send({ rate, cpu: (cpuMicros() - cpu0) / calls });
    } else {
      await c.close();
      await setup.shutdown();
      send({ closed: true });
      process.disconnect();
    }
  })();
});
send({ ready: true });
