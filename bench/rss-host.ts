/**
 * Host memory per plugin, measured in a fresh host process (run by
 * bench/run.ts): a long-running bench process has heap slack that new
 * plugins fill without growing its RSS, which would flatter the figure.
 * Prints JSON: the slope between 10 and N open plugins, after a full GC at
 * each end, of RSS and of what the host retains (V8 heap used plus memory
 * outside the heap: buffers, handles). RSS alone is unreliable here: memory
 * freed after start-up returns to the OS late, so RSS can even shrink while
 * plugins are added; mb_per_plugin is the larger of the two slopes.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { subprocess } from "../src/index.js";
import { benchPluginMain, openPlugin } from "./contenders.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const n = Number(process.argv[2] ?? 50);
const settle = async (): Promise<{ rss: number; retained: number }> => {
  gc();
  await new Promise((r) => setTimeout(r, 300));
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss / 2 ** 20, retained: (m.heapUsed + m.external) / 2 ** 20 };
};
const clients = [];
for (let i = 0; i < 10; i++) {
  clients.push(await openPlugin(subprocess(process.execPath, [benchPluginMain])));
}
const at10 = await settle();
for (let i = 10; i < n; i++) {
  clients.push(await openPlugin(subprocess(process.execPath, [benchPluginMain])));
}
const atN = await settle();
await Promise.all(clients.map((c) => c.close()));
const rssSlope = (atN.rss - at10.rss) / (n - 10);
const retainedSlope = (atN.retained - at10.retained) / (n - 10);
process.stdout.write(
  `${JSON.stringify({
    mb_per_plugin: Math.max(rssSlope, retainedSlope),
    rss_slope_mb: rssSlope,
    retained_slope_mb: retainedSlope,
    rss_at_10_mb: at10.rss,
    rss_at_n_mb: atN.rss,
  })}\n`,
);
