/**
 * src/resilience/circuit-breaker.ts: the breaker's states with an injected
 * clock (no test waits for time). The basic cycle is in
 * resilience-units.test.ts; these pin the defaults, probes, late reports and
 * the success threshold.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import {
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "../../../src/resilience/circuit-breaker.js";

function breaker(options: CircuitBreakerOptions = {}) {
  const clock = { now: 1_000_000 };
  const b = new CircuitBreaker(options, () => clock.now);
  const states: string[] = [];
  b.onStateChange = (s) => states.push(s);
  return { b, clock, states };
}

const fail = (b: CircuitBreaker): void => b.acquire()!(true);
const succeed = (b: CircuitBreaker): void => b.acquire()!(false);

test("defaults: five failures in a row open it for 2 s, one probe, one success closes it", () => {
  const { b, clock, states } = breaker();
  for (let i = 0; i < 4; i++) fail(b);
  assert.equal(b.state, "closed");
  fail(b);
  assert.equal(b.state, "open");
  assert.equal(b.canPass(), false);
  clock.now += 1_999;
  assert.equal(b.state, "open");
  clock.now += 1;
  assert.equal(b.state, "half-open");
  const probe = b.acquire();
  assert.ok(probe !== undefined);
  assert.equal(b.canPass(), false, "one probe at a time");
  assert.equal(b.acquire(), undefined);
  probe(false);
  assert.equal(b.state, "closed");
  assert.deepEqual(states, ["open", "half-open", "closed"]);
  assert.deepEqual([...b.failureCodes].sort(), [Code.Unavailable, Code.DeadlineExceeded].sort());
  assert.deepEqual(
    [...new CircuitBreaker({ failureCodes: [Code.Internal] }).failureCodes],
    [Code.Internal],
  );
});

test("an outcome that says nothing (undefined) neither counts nor resets, and a second report is ignored", () => {
  const { b } = breaker({ failureThreshold: 2 });
  fail(b);
  b.acquire()!(undefined);
  assert.equal(b.state, "closed");
  fail(b);
  assert.equal(b.state, "open", "the undefined report did not reset the count");
  const { b: b2 } = breaker({ failureThreshold: 2 });
  const report = b2.acquire()!;
  report(true);
  report(true);
  assert.equal(b2.state, "closed", "one call counts once");
  const { b: b3, clock } = breaker({ failureThreshold: 1, openMs: 10 });
  fail(b3);
  clock.now += 10;
  const probe = b3.acquire()!;
  probe(undefined);
  assert.equal(b3.state, "half-open");
  assert.equal(b3.canPass(), true, "its probe slot is given back");
});

test("half-open: several probes at once, and successThreshold successes to close", () => {
  const { b, clock, states } = breaker({
    failureThreshold: 1,
    openMs: 100,
    halfOpenProbes: 2,
    successThreshold: 2,
  });
  fail(b);
  clock.now += 100;
  const p1 = b.acquire()!;
  const p2 = b.acquire();
  assert.ok(p2 !== undefined, "a second probe");
  assert.equal(b.acquire(), undefined, "not a third");
  p1(false);
  assert.equal(b.state, "half-open", "one success of two");
  assert.equal(b.canPass(), true);
  p2(false);
  assert.equal(b.state, "closed");
  assert.deepEqual(states, ["open", "half-open", "closed"]);
  // Closed again, the counts start afresh: one failure opens it (threshold 1),
  // and the next half-open needs two successes again.
  fail(b);
  clock.now += 100;
  succeed(b);
  assert.equal(b.state, "half-open");
  succeed(b);
  assert.equal(b.state, "closed");
});

test("a call acquired while closed that fails after the circuit opened changes nothing; one failing while half-open reopens it", () => {
  const { b, clock, states } = breaker({ failureThreshold: 1, openMs: 100 });
  const late = b.acquire()!;
  const lateToo = b.acquire()!;
  fail(b);
  assert.equal(b.state, "open");
  const openedAt = clock.now;
  clock.now += 50;
  late(true);
  clock.now = openedAt + 100;
  assert.equal(b.state, "half-open", "the late failure did not restart the open time");
  // A call from the closed era reporting a failure while half-open: the endpoint still fails.
  lateToo(true);
  assert.equal(b.state, "open");
  assert.deepEqual(states, ["open", "half-open", "open"]);
  clock.now += 99;
  assert.equal(b.state, "open", "opened anew at the half-open failure");
});

test("a success from a call of the closed era does not close a half-open circuit", () => {
  const { b, clock } = breaker({ failureThreshold: 1, openMs: 100 });
  const old = b.acquire()!;
  fail(b);
  clock.now += 100;
  assert.equal(b.state, "half-open");
  old(false);
  assert.equal(b.state, "half-open", "only a probe's success closes it");
  succeed(b);
  assert.equal(b.state, "closed");
});

test("failures below the threshold are forgotten after a success; state changes are reported once each", () => {
  const { b, states } = breaker({ failureThreshold: 3 });
  fail(b);
  fail(b);
  succeed(b);
  fail(b);
  fail(b);
  assert.equal(b.state, "closed");
  fail(b);
  assert.equal(b.state, "open");
  assert.equal(b.acquire(), undefined, "rejected while open");
  assert.deepEqual(states, ["open"]);
});
