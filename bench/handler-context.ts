/**
 * CPU and bytes per call of a server's HandlerContext (handler-context.ts),
 * made, read as a handler that uses no signal does, and ended, for builds
 * side by side: `node --expose-gc dist/bench/handler-context.js [ROUNDS]
 * [ROOT...]` (ROOT: a dist folder; default this one). Each round runs every
 * root once in a shuffled order, in this process (CPU per call from
 * process.cpuUsage, GC included; bytes from the heap used before and after
 * a batch, without a collection in between). Prints per root the median
 * (min-max) over the rounds, and the same for a handler's copy
 * `{ ...ctx, values }`, which creates the call's AbortSignal.
 */
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createContextValues } from "@connectrpc/connect";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import type * as ContextModule from "../src/transport/handler-context.js";
import { median, shuffled } from "./stats.js";

const here = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const rounds = Number(args[0] ?? 15);
const roots = args.length > 1 ? args.slice(1) : [resolve(here, "../..")];
const CALLS = 200_000;

interface Root {
  readonly label: string;
  readonly factory: ContextModule.ContextFactory;
  /** The reason a call is ended with (callDone()). */
  readonly done: unknown;
}

const method = { name: "Echo", input: BytesValueSchema, output: BytesValueSchema } as never;
const requestHeader = new Headers();

function run(root: Root, copy: boolean): { ns: number; bytes: number } {
  const values = createContextValues();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap = process.memoryUsage().heapUsed;
  const start = process.cpuUsage();
  let sink = 0;
  for (let i = 0; i < CALLS; i++) {
    const ctx = root.factory.create({
      service: method,
      method,
      protocolName: "connect",
      url: "/bench.v1.BenchService/Echo",
      timeoutMs: undefined,
      requestHeader,
      contextValues: values,
    });
    if (copy)
      sink += ({ ...ctx, values } as { signal?: AbortSignal }).signal?.aborted === true ? 1 : 0;
    else sink += ctx.url.length + (ctx.timeoutMs() ?? 0);
    ctx.abort(root.done);
  }
  const cpu = process.cpuUsage(start);
  const bytes = process.memoryUsage().heapUsed - heap;
  if (sink < 0) console.log(sink);
  return { ns: ((cpu.user + cpu.system) / CALLS) * 1000, bytes: bytes / CALLS };
}

const loaded: Root[] = [];
for (const root of roots) {
  const ctx = (await import(
    pathToFileURL(resolve(root, "src/transport/handler-context.js")).href
  )) as typeof ContextModule;
  const support = (await import(
    pathToFileURL(resolve(root, "src/transport/call-support.js")).href
  )) as { callDone(): unknown };
  loaded.push({ label: root, factory: new ctx.ContextFactory(), done: support.callDone() });
}

for (const copy of [false, true]) {
  const ns = new Map<string, number[]>();
  const bytes = new Map<string, number[]>();
  for (const root of loaded) run(root, copy); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const root of shuffled(loaded)) {
      const m = run(root, copy);
      (ns.get(root.label) ?? ns.set(root.label, []).get(root.label))?.push(m.ns);
      (bytes.get(root.label) ?? bytes.set(root.label, []).get(root.label))?.push(m.bytes);
    }
  }
  console.log(copy ? "\nwith a handler's copy { ...ctx, values }" : "context made, read, ended");
  for (const root of loaded) {
    const n = ns.get(root.label) ?? [];
    const b = bytes.get(root.label) ?? [];
    const range = (xs: number[]): string =>
      `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
    console.log(`${root.label}: ns/call ${range(n)}, bytes/call ${range(b)}`);
  }
}
