import type { ConformanceReport } from "./checks.js";

const label = { pass: "PASS", fail: "FAIL", warn: "WARN", skip: "SKIP" } as const;

/** The report as text: one line per check, then a summary. */
export function formatReport(report: ConformanceReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length));
  const lines = report.checks.map(
    (c) =>
      `${label[c.status]}  ${c.id.padEnd(width)}  ${c.title}\n${" ".repeat(width + 8)}${c.detail}`,
  );
  const count = (s: string) => report.checks.filter((c) => c.status === s).length;
  lines.push(
    `\n${report.passed ? "conformant" : "NOT conformant"}: ${count("pass")} passed, ${count("fail")} failed, ` +
      `${count("warn")} recommended not met, ${count("skip")} skipped (${report.command.join(" ")})`,
  );
  return lines.join("\n");
}
