import assert from "node:assert/strict";
import { test } from "node:test";
import { CallStats } from "../src/host/call-stats.js";

// CallStats' arithmetic with a hand-driven clock (the interceptor itself is
// exercised through real plugins in status-page.test.ts).

function clocked(options = {}) {
  let now = 1_000_000_000;
  const stats = new CallStats(options, () => now);
  return { stats, advance: (ms: number) => (now += ms) };
}

test("CallStats: p50 and p99 come out within 10% of the true values", () => {
  const { stats } = clocked();
  // 1..1000 ms: p50 = 500, p99 = 990.
  for (let ms = 1; ms <= 1000; ms++) stats.record("S/M", ms, true);
  const [m] = stats.snapshot();
  assert.ok(m !== undefined);
  assert.ok(Math.abs((m.p50Ms ?? 0) - 500) / 500 < 0.1, `p50 ${m.p50Ms}`);
  assert.ok(Math.abs((m.p99Ms ?? 0) - 990) / 990 < 0.1, `p99 ${m.p99Ms}`);
  assert.equal(m.calls, 1000);
  // Microseconds too.
  const { stats: fast } = clocked();
  for (let i = 0; i < 100; i++) fast.record("S/F", 0.05, true);
  const [f] = fast.snapshot();
  assert.ok(Math.abs((f?.p50Ms ?? 0) - 0.05) / 0.05 < 0.1, `p50 ${f?.p50Ms}`);
});

test("CallStats: calls per second over the last 10 full seconds; percentiles forget after 60 s", () => {
  const { stats, advance } = clocked();
  for (let s = 0; s < 10; s++) {
    for (let i = 0; i < 5; i++) stats.record("S/M", 2, i !== 0);
    advance(1_000);
  }
  let [m] = stats.snapshot();
  assert.equal(m?.callsPerSecond, 5);
  assert.equal(m?.errors, 10);
  advance(61_000);
  [m] = stats.snapshot();
  assert.equal(m?.callsPerSecond, 0);
  assert.equal(m?.p50Ms, undefined);
  assert.equal(m?.calls, 50, "totals are kept");
});

test("CallStats: memory is bounded: methods beyond maxMethods count as (other)", () => {
  const { stats } = clocked({ maxMethods: 3 });
  for (let i = 0; i < 10; i++) stats.record(`S/M${i}`, 1, true);
  const methods = stats.snapshot().map((m) => [m.method, m.calls]);
  assert.deepEqual(methods, [
    ["(other)", 7],
    ["S/M0", 1],
    ["S/M1", 1],
    ["S/M2", 1],
  ]);
});
