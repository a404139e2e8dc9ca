/**
 * Issue 12's targets, judged from the rows of one `npm run bench` run: by
 * run.ts at the end of a run, and by summary.ts over the JSON files of
 * several runs (the issue judges each target over at least three, with
 * their min and max). Every target is one or more ratios, each with its
 * limit, so that runs can be set side by side.
 */
import type { Row } from "./report.js";
import { round } from "./stats.js";
import {
  CALLERS,
  CG_REMOTE,
  COLD_BUNDLED,
  COLD_CODE_CACHE,
  COLD_PLAIN,
  COLD_SNAPSHOT,
  CP_DIRECT,
  CP_FRAMED,
  CP_FRAMED_PLAIN,
  CP_H2_PLAIN,
  CP_HOST_GO_PLUGIN,
  CP_REMOTE,
  CP_REMOTE_FRAMED,
  CP_REMOTE_FRAMED_TLS,
  CP_REMOTE_GRPC,
  FLOOR,
  GO_HOST_CP_PLUGIN,
  GO_PLUGIN,
  GO_PLUGIN_MTLS,
  H2_FLOOR,
  H2_FLOOR_TCP,
  HOST_RSS_FRAMED,
  NODE_BOOT,
  PINNED_PREFIX,
  S,
} from "./names.js";

/** One ratio of a target and its limit: met when `value ≤ limit` (or `≥` with `atLeast`). */
export interface Check {
  readonly value: number;
  readonly limit: number;
  readonly atLeast: boolean;
  /** Unit of the value: "×" for ratios, else what it is ("µs", "MB"). */
  readonly unit: string;
}

export interface Target {
  readonly name: string;
  /** The figures behind the checks, as the report prints them. */
  readonly measured: string;
  readonly checks: readonly Check[];
}

/** Met when every check is (a missing figure is a NaN, which meets nothing). */
export function met(t: Target): boolean {
  return t.checks.every((c) => (c.atLeast ? c.value >= c.limit : c.value <= c.limit));
}

const atMost = (value: number, limit: number, unit = "×"): Check => ({
  value,
  limit,
  atLeast: false,
  unit,
});
const atLeast = (value: number, limit: number): Check => ({
  value,
  limit,
  atLeast: true,
  unit: "×",
});
const x = (r: number): string => `${r.toFixed(2)}×`;
const n = (v: number): string => v.toLocaleString("en-US");

/** Every target, from one run's rows. */
export function targets(rows: readonly Row[]): Target[] {
  const find = (scenario: string, contender: string): Row | undefined =>
    rows.find((r) => r.scenario === scenario && r.contender === contender);
  const p50 = (scenario: string, contender: string): number =>
    find(scenario, contender)?.p50_us ?? NaN;
  const rate = (scenario: string, contender: string): number =>
    find(scenario, contender)?.ops_per_s ?? NaN;
  const mb = (scenario: string, contender: string): number =>
    find(scenario, contender)?.rss_mb ?? NaN;

  /** Unary time added over the scenario's own raw-socket floor ≤ 0.8× go-plugin's. */
  const overFloor = (scenario: string, ours: string, theirs: string, where: string): Target => {
    const floor = p50(scenario, FLOOR);
    const u = p50(scenario, ours) - floor;
    const uGo = p50(scenario, theirs) - floor;
    return {
      name: `${ours} vs ${theirs}${where}: unary time over the floor ≤ 0.8×`,
      measured: `${round(u)} µs vs ${round(uGo)} µs over ${floor} µs (${x(u / uGo)})`,
      checks: [atMost(u / uGo, 0.8)],
    };
  };

  /**
   * Local framed against go-plugin, like for like (AutoMTLS on both sides, or
   * off on both): unary time added over the raw-socket floor ≤ 0.8×
   * go-plugin's, 64 callers ≥ 1.3×, 1 MiB ≤ 1.0×, 16-byte server stream ≥ 1.0×.
   */
  const likeForLike = (ours: string, theirs: string): Target[] => {
    const c = rate(S.concurrent, ours);
    const cGo = rate(S.concurrent, theirs);
    const b = p50(S.big, ours);
    const bGo = p50(S.big, theirs);
    const s = rate(S.stream, ours);
    const sGo = rate(S.stream, theirs);
    const vs = `${ours} vs ${theirs}`;
    return [
      overFloor(S.unary, ours, theirs, ""),
      {
        name: `${vs}: ${CALLERS} callers ≥ 1.3×`,
        measured: `${n(c)} vs ${n(cGo)} calls/s (${x(c / cGo)})`,
        checks: [atLeast(c / cGo, 1.3)],
      },
      {
        name: `${vs}: 1 MiB unary p50 ≤ 1.0×`,
        measured: `${b} µs vs ${bGo} µs (${x(b / bGo)})`,
        checks: [atMost(b / bGo, 1)],
      },
      {
        name: `${vs}: server stream ≥ 1.0×`,
        measured: `${n(s)} vs ${n(sGo)} msgs/s (${x(s / sGo)})`,
        checks: [atLeast(s / sGo, 1)],
      },
    ];
  };

  const pinned = [
    ...new Set(rows.map((r) => r.scenario).filter((s) => s.startsWith(PINNED_PREFIX))),
  ];
  const boot = p50(S.cold, NODE_BOOT);
  const ms = (us: number): string => `${round(us / 1_000)} ms`;
  const cold = (name: string, contender: string, extra = ""): Target => {
    const c = p50(S.cold, contender);
    return {
      name,
      measured: `${ms(c)} vs ${ms(boot)} (${x(c / boot)})${extra}`,
      checks: [atMost(c / boot, 2)],
    };
  };
  const pssNode = mb(S.pss, CP_FRAMED);
  const inproc = p50(S.inproc, CP_DIRECT);
  const hostMb = mb(S.rss, HOST_RSS_FRAMED);
  const cGo = rate(S.concurrent, GO_PLUGIN);
  const uFramed = p50(S.unary, CP_FRAMED);
  const uPlain = p50(S.unary, CP_FRAMED_PLAIN);

  return [
    ...likeForLike(CP_FRAMED, GO_PLUGIN_MTLS),
    ...likeForLike(CP_FRAMED_PLAIN, GO_PLUGIN),
    ...pinned.flatMap((scenario) => {
      const where = `, pinned: ${scenario.slice(PINNED_PREFIX.length)}`;
      return [
        overFloor(scenario, CP_FRAMED, GO_PLUGIN_MTLS, where),
        overFloor(scenario, CP_FRAMED_PLAIN, GO_PLUGIN, where),
      ];
    }),
    // A project from `npm create connect-plugin` builds its plugin with
    // `connect-plugin code-cache` and starts that: the row its users get.
    cold(
      "Node plugin cold start (framed, AutoMTLS) ≤ 2× node -e 0, as the scaffold builds it (CommonJS bundle + V8 code cache)",
      COLD_CODE_CACHE,
      `; go-plugin ${ms(p50(S.cold, GO_PLUGIN))}, with AutoMTLS ${ms(p50(S.cold, GO_PLUGIN_MTLS))}`,
    ),
    cold(
      "the same as an ES module bundle (esbuild, split; the scaffold's layout before session 23) ≤ 2× node -e 0",
      COLD_BUNDLED,
    ),
    cold(
      "the same unbundled (dist/plugin.js: about 160 modules loaded) ≤ 2× node -e 0",
      COLD_PLAIN,
    ),
    cold(
      "the same from a V8 startup snapshot (connect-plugin snapshot) ≤ 2× node -e 0",
      COLD_SNAPSHOT,
    ),
    {
      // The alternative, several plugins in one Node process, is
      // measured by `npm run bench:memory` (docs/plugin-memory.md), not here.
      name: "Node plugin idle after the run ≤ 12 MB PSS, in a process of its own",
      measured: `${pssNode} MB (Go plugin ${mb(S.pss, GO_PLUGIN)} MB); several in one process: npm run bench:memory`,
      checks: [atMost(pssNode, 12, "MB")],
    },
    {
      name: "in-process call overhead ≤ 2 µs",
      measured: `${inproc} µs`,
      checks: [atMost(inproc, 2, "µs")],
    },
    // The HTTP/2 floor is cleartext: CP_H2 (AutoMTLS) is printed, but judged without TLS.
    // Rows over loopback TCP are judged against the floor over loopback TCP.
    ...[
      CP_H2_PLAIN,
      CP_REMOTE,
      CP_REMOTE_GRPC,
      CG_REMOTE,
      CP_HOST_GO_PLUGIN,
      GO_HOST_CP_PLUGIN,
    ].map((row): Target => {
      const overTcp = row === CP_REMOTE || row === CP_REMOTE_GRPC || row === CG_REMOTE;
      const floor = overTcp ? H2_FLOOR_TCP : H2_FLOOR;
      const u = p50(S.unary, row);
      const c = rate(S.concurrent, row);
      const over = overTcp ? " (floor over loopback TCP)" : "";
      return {
        name: `HTTP/2 floor${over}: ${row}: p50 ≤ 1.3×, ${CALLERS} callers ≥ 0.8×`,
        measured: `${u} µs (${x(u / p50(S.unary, floor))}), ${n(c)} calls/s (${x(c / rate(S.concurrent, floor))})`,
        checks: [atMost(u / p50(S.unary, floor), 1.3), atLeast(c / rate(S.concurrent, floor), 0.8)],
      };
    }),
    ...[CP_REMOTE_FRAMED, CP_REMOTE_FRAMED_TLS].map((row): Target => {
      const u = p50(S.unary, row);
      const c = rate(S.concurrent, row);
      const local = row === CP_REMOTE_FRAMED ? uPlain : uFramed;
      return {
        name: `${row}: p50 ≤ 1.3× local framed, ${CALLERS} callers ≥ go-plugin`,
        measured: `${u} µs (${x(u / uPlain)} local framed without TLS, ${x(u / uFramed)} with AutoMTLS), ${n(c)} calls/s (${x(c / cGo)} go-plugin)`,
        checks: [atMost(u / local, 1.3), atLeast(c / cGo, 1)],
      };
    }),
    {
      name: "host RSS per extra subprocess plugin ≤ 2 MB",
      measured: `${hostMb} MB`,
      checks: [atMost(hostMb, 2, "MB")],
    },
  ];
}
