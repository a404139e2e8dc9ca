/**
 * The cost of an in-process plugin call against a plain async function.
 *
 * `node dist/bench/in-process.js [SECONDS]`: in this build, sequential
 * 16-byte unary calls through `dispense("bench").echo({ value })` and
 * through a plain async function (the floor), as the in-process rows of
 * `node dist/bench/run.js` make them (bench/contenders.ts), in batches of
 * 1,000, alternated; prints each one's median µs per call with min-max over
 * the batches.
 *
 * `node dist/bench/in-process.js --ab BASE_DIST NEW_DIST [ROUNDS] [SECONDS]`:
 * two builds (the `dist` directories of two worktrees) compared in one
 * process per round, which loads both and alternates their batches (and
 * the floor's), so that a noisy machine weighs on both alike; a fresh
 * process per round. Prints each round's medians, then the medians
 * (min-max) over the rounds and the new build's time as a share of the
 * base's.
 *
 * `--interceptor` (anywhere in the arguments): every build's client has
 * one user interceptor that copies the request, `next({ ...req })`, the
 * common connect-es pattern whose copy must keep the request's signal
 * (src/transport/signal-view.ts): the per-call cost of a user interceptor.
 * `--auth`: instead, a user interceptor that passes the request on as it
 * is, then bearerAuth (which adds its header on a copy: signal-view.ts's
 * withHeader).
 */
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Interceptor } from "@connectrpc/connect";
import type * as Contenders from "./contenders.js";
import type * as Index from "../src/index.js";
import type * as Service from "./service.js";
import { median, round } from "./stats.js";

/** µs per call of each contender, one figure per batch of 1,000 calls. */
type Figures = Record<string, number[]>;

type Batches = (n: number) => Promise<number[]>;

/**
 * The in-process contender of the build in `dist`, and its close; with a
 * user interceptor that copies each request when `--interceptor` is given.
 */
async function directOf(dist: string): Promise<Contenders.Contender> {
  const load = (path: string): Promise<unknown> => import(pathToFileURL(resolve(dist, path)).href);
  const c = (await load("bench/contenders.js")) as typeof Contenders;
  if (!withInterceptor) return c.connectPluginInProcess("in-process-direct", "direct");
  const { PluginClient, inProcess, bearerAuth } = (await load("src/index.js")) as typeof Index;
  const { benchPlugin } = (await load("bench/service.js")) as typeof Service;
  const copying: Interceptor = (next) => (req) => next({ ...req });
  const passing: Interceptor = (next) => (req) => next(req);
  const interceptors = withAuth ? [passing, bearerAuth("token")] : [copying];
  class Intercepted extends PluginClient<never> {
    constructor(options: ConstructorParameters<typeof PluginClient<never>>[0]) {
      super({ ...options, interceptors });
    }
  }
  const client = await c.openPlugin(
    inProcess(benchPlugin(), { mode: "direct" }),
    Intercepted as unknown as typeof PluginClient,
  );
  return c.fromOps("in-process-direct", c.connectOps(client.dispense("bench")), () =>
    client.close(),
  );
}

/**
 * The contenders' batches, alternated ten at a time for `seconds` after a
 * warm-up (every path optimized before the first figure).
 */
async function measure(
  contenders: Record<string, Contenders.Contender>,
  seconds: number,
): Promise<Figures> {
  const entries = Object.entries(contenders).map(
    ([name, c]) => [name, (c.batches as Batches).bind(c)] as const,
  );
  for (const [, batches] of entries) await batches(100);
  const figures: Figures = Object.fromEntries(entries.map(([name]) => [name, []]));
  const end = performance.now() + seconds * 1_000;
  while (performance.now() < end) {
    for (const [name, batches] of entries) figures[name]?.push(...(await batches(10)));
  }
  for (const c of Object.values(contenders)) await c.close();
  return figures;
}

const spread = (xs: readonly number[]): string =>
  `${round(median(xs))} (${round(Math.min(...xs))}-${round(Math.max(...xs))})`;

const here = fileURLToPath(import.meta.url);
const withAuth = process.argv.includes("--auth");
const withInterceptor = withAuth || process.argv.includes("--interceptor");
const args = process.argv.slice(2).filter((a) => a !== "--interceptor" && a !== "--auth");
const { plainCall } = await import("./contenders.js");

if (args[0] === "--child") {
  const [, base = "", next = "", seconds = "2"] = args;
  const figures = await measure(
    {
      base: await directOf(base),
      new: await directOf(next),
      floor: await plainCall("plain"),
    },
    Number(seconds),
  );
  console.log(JSON.stringify(figures));
} else if (args[0] === "--ab") {
  const [base = "", next = "", rounds = "7", seconds = "3"] = args.slice(1);
  const names = ["base", "new", "floor"] as const;
  const medians: Record<string, number[]> = { base: [], new: [], floor: [] };
  const ratios: number[] = [];
  for (let r = 0; r < Number(rounds); r++) {
    // Base loaded (and warmed) first in odd rounds, the new build in even ones.
    const dists = r % 2 === 0 ? [base, next] : [next, base];
    const out = execFileSync(
      process.execPath,
      [
        here,
        "--child",
        ...dists.map((d) => resolve(d)),
        seconds,
        ...(withAuth ? ["--auth"] : withInterceptor ? ["--interceptor"] : []),
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    const raw = JSON.parse(out) as Figures;
    const f: Figures =
      r % 2 === 0
        ? raw
        : { base: raw["new"] ?? [], new: raw["base"] ?? [], floor: raw["floor"] ?? [] };
    for (const n of names) medians[n]?.push(median(f[n] ?? []));
    ratios.push(median(f["new"] ?? []) / median(f["base"] ?? []));
    console.log(
      `round ${r + 1}: ` + names.map((n) => `${n} ${round(median(f[n] ?? []))} µs`).join(", "),
    );
  }
  console.log(`\nµs per call, median (min-max) over ${rounds} rounds of each round's median:`);
  console.log(`| contender | µs per call | × floor |`);
  console.log(`|---|---|---|`);
  for (const n of names) {
    const x = (medians[n] ?? []).map((v, i) => v / (medians["floor"]?.[i] as number));
    console.log(`| ${n} | ${spread(medians[n] ?? [])} | ${spread(x)} |`);
  }
  console.log(`new / base, per round: ${spread(ratios)}`);
} else {
  const seconds = Number(args[0] ?? 5);
  const f = await measure(
    { direct: await directOf(resolve(here, "../..")), floor: await plainCall("plain") },
    seconds,
  );
  console.log(`µs per call, median (min-max) of ${f["direct"]?.length} batches of 1,000:`);
  console.log(`in-process direct:    ${spread(f["direct"] ?? [])}`);
  console.log(`plain async function: ${spread(f["floor"] ?? [])}`);
}
