/**
 * A connect-plugin host in a process of its own, for `npm run bench:cold`
 * (bench/cold-start.ts): it launches the bench plugin on request and times
 * each launch from spawn to the first call answered. `--dist DIR` runs the
 * host and plugin of another build (for before/after figures in one run);
 * by default, this build's.
 *
 * JSON lines on stdin, `{"op": "cold", "n": 3, "bundled": false, "autoMTLS": true}`
 * (`"snapshot": true`: the bundled plugin as a V8 startup snapshot;
 * `"codeCache": true`: as one CommonJS bundle with V8's code cache),
 * answered on stdout with `{"samples_us": [...], "cpu_us": [...]}` (the Go
 * bench host's protocol, plus the plugin's CPU time up to that first answer,
 * from /proc/PID/schedstat: less at the mercy of a loaded machine than
 * wall time).
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import type * as Bundle from "./bundle.js";
import type * as Contenders from "./contenders.js";
import type * as Index from "../src/index.js";

const at = process.argv.indexOf("--dist");
const dist =
  at >= 0 ? pathToFileURL(`${process.argv[at + 1] ?? "."}/`) : new URL("../", import.meta.url);
const from = async <T>(path: string): Promise<T> => (await import(new URL(path, dist).href)) as T;

type Launch = (
  main: string,
  autoMTLS: boolean,
) => Promise<{ close(): Promise<void>; status(): { where: string } }>;
const { openPlugin } = await from<typeof Contenders>("bench/contenders.js");
const { subprocess } = await from<typeof Index>("src/index.js");
const { bundledBenchPlugin } = await from<typeof Bundle>("bench/bundle.js");
const plain = fileURLToPath(new URL("bench/plugin.js", dist));
const bundled = await bundledBenchPlugin();
// Another build's bench may have no snapshot builder.
const { snapshotBenchPlugin } = await from<Partial<typeof Bundle>>("bench/bundle.js");
const snapshot = await snapshotBenchPlugin?.();
const { codeCacheBenchPlugin } = await from<Partial<typeof Bundle>>("bench/bundle.js");
const codeCache = await codeCacheBenchPlugin?.();
const launch: Launch = (main, autoMTLS) =>
  openPlugin(
    subprocess(process.execPath, main.endsWith(".blob") ? ["--snapshot-blob", main] : [main], {
      autoMTLS,
    }),
  );

// One launch first, so that the host's own first-time costs (its AutoMTLS
// certificate, JIT) are not counted: a host launches many plugins.
await (await launch(plain, true)).close();

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as {
    op: string;
    n: number;
    bundled: boolean;
    autoMTLS: boolean;
    snapshot?: boolean;
    codeCache?: boolean;
  };
  const main =
    cmd.snapshot === true
      ? snapshot
      : cmd.codeCache === true
        ? codeCache
        : cmd.bundled
          ? bundled
          : plain;
  if (cmd.op !== "cold" || main === undefined) {
    const error = cmd.op !== "cold" ? `unknown op ${cmd.op}` : "this build has no such plugin";
    process.stdout.write(`${JSON.stringify({ error })}\n`);
    continue;
  }
  const samples: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < cmd.n; i++) {
    const t = performance.now();
    const client = await launch(main, cmd.autoMTLS);
    samples.push((performance.now() - t) * 1_000);
    cpu.push(cpuMicros(/^pid (\d+):/.exec(client.status().where)?.[1]));
    await client.close();
  }
  process.stdout.write(`${JSON.stringify({ samples_us: samples, cpu_us: cpu })}\n`);
}

/** The CPU time a process has run so far, in µs (the first field of /proc/PID/schedstat, in ns). */
export function cpuMicros(pid: string | undefined): number {
  if (pid === undefined) return NaN;
  return Number(readFileSync(`/proc/${pid}/schedstat`, "latin1").split(" ")[0]) / 1_000;
}
