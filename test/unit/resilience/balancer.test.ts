/**
 * The balancers' decisions, on plain lists: which instance of a pool takes
 * the next call. The cluster tests run them against real instances; these
 * pin the choice itself (order, ties, load), fast enough for mutation runs.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  balancerByName,
  leastOutstanding,
  roundRobin,
  type BalancedEndpoint,
  type Balancer,
} from "../../../src/resilience/balancer.js";

function pool(...outstanding: number[]): BalancedEndpoint[] {
  return outstanding.map((n, i) => ({ id: `e${i}`, outstanding: n }));
}

function picks(balancer: Balancer, candidates: readonly BalancedEndpoint[], n: number): string[] {
  return Array.from({ length: n }, () => balancer.pick(candidates).id);
}

describe("round-robin", () => {
  test("takes each candidate in turn, in the order given, and starts again", () => {
    assert.deepEqual(picks(roundRobin(), pool(0, 0, 0), 7), "e0 e1 e2 e0 e1 e2 e0".split(" "));
  });

  test("ignores the calls in flight", () => {
    assert.deepEqual(picks(roundRobin(), pool(50, 0, 9), 3), ["e0", "e1", "e2"]);
  });

  test("keeps turning when the list changes size (an instance left or came back)", () => {
    const rr = roundRobin();
    assert.deepEqual(picks(rr, pool(0, 0, 0), 2), ["e0", "e1"]);
    // The third pick on a pool of two: its turn counter (2) wraps to the first.
    assert.deepEqual(picks(rr, pool(0, 0), 3), ["e0", "e1", "e0"]);
  });

  test("each balancer keeps its own turn", () => {
    const a = roundRobin();
    const b = roundRobin();
    assert.equal(a.pick(pool(0, 0)).id, "e0");
    assert.equal(b.pick(pool(0, 0)).id, "e0");
    assert.equal(a.pick(pool(0, 0)).id, "e1");
  });

  test("a long run spreads calls evenly and never returns nothing", () => {
    const rr = roundRobin();
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const e = rr.pick(pool(0, 0, 0, 0, 0, 0, 0));
      counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [429, 429, 429, 429, 428, 428, 428]);
  });
});

describe("least-outstanding", () => {
  test("takes the candidate with the fewest calls in flight", () => {
    const lo = leastOutstanding();
    for (let i = 0; i < 4; i++) assert.equal(lo.pick(pool(3, 1, 2)).id, "e1");
    assert.equal(lo.pick(pool(0, 1, 2)).id, "e0");
    assert.equal(lo.pick(pool(5, 4, 0)).id, "e2");
  });

  test("an idle pool is served round-robin, in the order given", () => {
    assert.deepEqual(picks(leastOutstanding(), pool(0, 0, 0), 6), "e0 e1 e2 e0 e1 e2".split(" "));
  });

  test("ties among the least loaded go round-robin; busier ones are skipped", () => {
    // e1 is busy: the turn moves over e0, e1, e2, e3 and a busy start passes to
    // the next idle candidate after it.
    assert.deepEqual(picks(leastOutstanding(), pool(0, 4, 0, 0), 4), ["e0", "e2", "e2", "e3"]);
  });

  test("a slow instance with calls building up gets no new ones", () => {
    const lo = leastOutstanding();
    const candidates = pool(0, 0);
    const load = new Map<string, number>([
      ["e0", 0],
      ["e1", 0],
    ]);
    for (let i = 0; i < 10; i++) {
      const view = candidates.map((c) => ({ ...c, outstanding: load.get(c.id) ?? 0 }));
      const chosen = lo.pick(view);
      // e0 never finishes a call; e1 finishes each at once.
      if (chosen.id === "e0") load.set("e0", (load.get("e0") ?? 0) + 1);
    }
    assert.equal(load.get("e0"), 1, "one call went to e0, then it was always the busier one");
  });

  test("returns the candidate object itself, with its own fields", () => {
    const a = { id: "a", outstanding: 1, url: "http://127.0.0.1:1" };
    const b = { id: "b", outstanding: 0, url: "http://127.0.0.1:2" };
    assert.equal(leastOutstanding().pick([a, b]), b);
    assert.equal(roundRobin().pick([a, b]), a);
  });
});

describe("balancerByName", () => {
  test('"round-robin" rotates regardless of load', () => {
    assert.deepEqual(picks(balancerByName("round-robin"), pool(9, 0), 2), ["e0", "e1"]);
  });

  test('"least-outstanding" follows the load', () => {
    assert.deepEqual(picks(balancerByName("least-outstanding"), pool(9, 0), 2), ["e1", "e1"]);
  });

  test("a balancer object is used as it is", () => {
    const own: Balancer = { pick: (c) => c[c.length - 1] as (typeof c)[number] };
    assert.equal(balancerByName(own), own);
  });
});
