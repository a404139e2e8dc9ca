/**
 * `node dist/bench/micro.js SCENARIO [SECONDS]`: one scenario against
 * connect-plugin alone, for profiling (`node --cpu-prof dist/bench/micro.js
 * unary`; set CONNECT_PLUGIN_PROFILE_PLUGIN=1 to profile the plugin process
 * too). Scenarios: unary, unary-notls, concurrent, concurrent-notls,
 * stream, stream-notls, mib, mib-notls (sequential 1 MiB calls), inproc,
 * floor. Prints one figure per second.
 */
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { inProcess, subprocess } from "../src/index.js";
import { benchPluginMain, openPlugin } from "./contenders.js";
import { MiB } from "./run-sizes.js";
import { benchPlugin } from "./service.js";

const scenario = process.argv[2] ?? "unary";
const seconds = Number(process.argv[3] ?? 5);
const notls = scenario.endsWith("-notls");
const kind = scenario.replace(/-notls$/, "");
const execArgv = process.env.CONNECT_PLUGIN_PROFILE_PLUGIN === "1" ? ["--cpu-prof"] : [];

const source =
  kind === "inproc" || kind === "floor"
    ? inProcess(benchPlugin())
    : subprocess(process.execPath, [...execArgv, benchPluginMain], {
        transports: ["framed"],
        autoMTLS: !notls,
      });
const client = await openPlugin(source);
const bench = client.dispense("bench");
const msg = create(BytesValueSchema, { value: new Uint8Array(16).fill(7) });
const big = create(BytesValueSchema, { value: new Uint8Array(MiB).fill(7) });

const impl = (m: unknown): Promise<unknown> => Promise.resolve(m);
for (let s = 0; s < seconds; s++) {
  const end = performance.now() + 1_000;
  const t = performance.now();
  let n = 0;
  if (kind === "unary" || kind === "inproc" || kind === "floor") {
    while (performance.now() < end) {
      for (let i = 0; i < 100; i++) await (kind === "floor" ? impl(msg) : bench.echo(msg));
      n += 100;
    }
  } else if (kind === "concurrent") {
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < end) {
          await bench.echo(msg);
          n++;
        }
      }),
    );
  } else if (kind === "mib") {
    while (performance.now() < end) {
      await bench.echo(big);
      n++;
    }
  } else if (kind === "stream") {
    while (performance.now() < end) {
      for await (const _ of bench.stream({ value: 20_000n })) n++;
    }
  } else throw new Error(`unknown scenario ${scenario}`);
  const dt = performance.now() - t;
  console.log(
    `${scenario}: ${Math.round(n / (dt / 1_000)).toLocaleString("en-US")}/s, ${((dt * 1_000) / n).toFixed(2)} µs each`,
  );
}
await client.close();
