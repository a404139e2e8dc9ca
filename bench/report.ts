/** The benchmark's output: rows, ratios, targets, Markdown and JSON. */
import { FLOOR, GO_PLUGIN } from "./names.js";
import { round } from "./stats.js";
import { met, type Target } from "./targets.js";

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

/** One target per line: what it asks, the figures, met or not. */
export function markdownTargets(list: readonly Target[]): string {
  const lines = ["| target | measured | met |", "| --- | --- | :---: |"];
  for (const t of list) lines.push(`| ${t.name} | ${t.measured} | ${met(t) ? "yes" : "**no**"} |`);
  return lines.join("\n");
}

/**
 * Several runs side by side (`npm run bench:summary`): each run's ratios, the
 * lowest and highest of each over the runs, and in how many runs the target
 * was met. A run without a target's rows (an older file) shows "–".
 */
export function markdownTargetRuns(runs: readonly (readonly Target[])[]): string {
  const names = [...new Set(runs.flatMap((r) => r.map((t) => t.name)))];
  const head = runs.map((_, i) => `run ${i + 1}`);
  const lines = [
    `| target | ${head.join(" | ")} | min–max | met |`,
    `| --- | ${head.map(() => "---:").join(" | ")} | ---: | :---: |`,
  ];
  const figure = (v: number, unit: string): string =>
    Number.isFinite(v) ? `${v.toFixed(2)}${unit === "×" ? "×" : ` ${unit}`}` : "–";
  for (const name of names) {
    const found = runs.map((r) =>
      r.find((t) => t.name === name && t.checks.some((c) => Number.isFinite(c.value))),
    );
    const present = found.filter((t): t is Target => t !== undefined);
    const checks = present[0]?.checks ?? [];
    const cells = found.map((t) =>
      t === undefined ? "–" : t.checks.map((c) => figure(c.value, c.unit)).join(", "),
    );
    const range =
      present.length === 0
        ? "–"
        : checks
            .map((c, i) => {
              const values = present.map((t) => t.checks[i]?.value ?? NaN).filter(Number.isFinite);
              if (values.length === 0) return "–";
              const lo = figure(Math.min(...values), c.unit);
              const hi = figure(Math.max(...values), c.unit);
              return lo === hi ? lo : `${lo}–${hi}`;
            })
            .join(", ");
    const times = present.filter(met).length;
    const verdict =
      present.length === 0
        ? "–"
        : times === present.length
          ? `${times} of ${present.length}`
          : `**${times} of ${present.length}**`;
    lines.push(`| ${name} | ${cells.join(" | ")} | ${range} | ${verdict} |`);
  }
  return lines.join("\n");
}
