/** The benchmark's output: rows, ratios, targets, Markdown and JSON. */
import { round } from "./stats.js";

export interface Row {
  scenario: string;
  contender: string;
  p50_us: number | null;
  p99_us: number | null;
  ops_per_s: number | null;
  rss_mb: number | null;
  /** The lowest and highest round's figure (p50 or rate), null for single measurements. */
  spread: [number, number] | null;
  /** Scenario 2: the cores each side (host, plugin) may use, and how the callers run. */
  cores?: string;
}

export const GO_PLUGIN = "go-plugin (Go host, Go plugin, gRPC)";
export const FLOOR = "raw unix socket ping-pong (floor)";

/** The figure a ratio compares: latency where there is one, else throughput, else memory. */
function figure(row: Row): { value: number; higherIsBetter: boolean } | undefined {
  if (row.p50_us !== null) return { value: row.p50_us, higherIsBetter: false };
  if (row.ops_per_s !== null) return { value: row.ops_per_s, higherIsBetter: true };
  if (row.rss_mb !== null) return { value: row.rss_mb, higherIsBetter: false };
  return undefined;
}

/** "1.8× slower" style ratio of a row against an anchor row of the same scenario. */
function ratio(row: Row, anchor: Row | undefined): string {
  if (anchor === undefined || anchor === row) return anchor === row ? "1×" : "";
  const a = figure(anchor);
  const r = figure(row);
  if (a === undefined || r === undefined || a.value <= 0 || r.value <= 0) return "";
  const x = r.value / a.value;
  // Always say it as "time taken" / "work done" relative to the anchor.
  return `${x >= 10 ? Math.round(x) : x.toFixed(2)}×`;
}

const fmt = (v: number | null): string =>
  v === null || !Number.isFinite(v) ? "" : round(v).toLocaleString("en-US");

export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    "| scenario | contender | p50 µs | p99 µs | ops/s | MB | rounds min–max | vs go-plugin | vs floor |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of rows) {
    const same = rows.filter((r) => r.scenario === row.scenario);
    const go = same.find((r) => r.contender === GO_PLUGIN);
    const floor = same.find((r) => r.contender === FLOOR);
    lines.push(
      `| ${row.scenario} | ${row.contender}${row.cores === undefined ? "" : ` (${row.cores})`} | ${fmt(row.p50_us)} | ${fmt(row.p99_us)} | ` +
        `${fmt(row.ops_per_s)} | ${fmt(row.rss_mb)} | ` +
        `${row.spread === null ? "" : `${fmt(row.spread[0])}–${fmt(row.spread[1])}`} | ` +
        `${ratio(row, go)} | ${ratio(row, floor)} |`,
    );
  }
  return lines.join("\n");
}

export interface Target {
  readonly name: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

export function markdownTargets(targets: readonly Target[]): string {
  const lines = ["| target | measured | met |", "| --- | --- | :---: |"];
  for (const t of targets) {
    lines.push(
      `| ${t.name} | ${t.measured} | ${t.met === undefined ? "n/a" : t.met ? "yes" : "**no**"} |`,
    );
  }
  return lines.join("\n");
}
