/** src/resilience/retry-decision.ts: every branch of the cluster's retry rule. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { decideRetry, type FailedAttempt } from "../../../src/resilience/retry-decision.js";

const NAME = "example.kv.v1.KV/Put";

/** A failed first attempt of an idempotent call that may be retried. */
const base: FailedAttempt = {
  code: Code.Unavailable,
  abandoned: false,
  notSent: false,
  idempotent: true,
  retryableCode: true,
  budgetAllows: true,
  attempt: 1,
  maxAttempts: 3,
  timeLeft: true,
  canFallBack: false,
};

const decide = (change: Partial<FailedAttempt>) => decideRetry({ ...base, ...change }, NAME, 500);

test("an abandoned call (caller cancelled, cluster closed) is rethrown as it is", () => {
  assert.deepEqual(decide({ abandoned: true }), { action: "rethrow" });
  assert.deepEqual(decide({ abandoned: true, canFallBack: true }), { action: "rethrow" });
});

test("an idempotent call is retried on a retryable code while attempts, time and budget last", () => {
  assert.deepEqual(decide({}), { action: "retry" });
  assert.deepEqual(decide({ attempt: 2 }), { action: "retry" });
});

test("a non-idempotent call is retried only when it provably was never sent", () => {
  assert.deepEqual(decide({ idempotent: false, notSent: true }), { action: "retry" });
  assert.deepEqual(decide({ idempotent: false }), {
    action: "fail",
    why: `; not retried: ${NAME} is not idempotent and the request may have reached the plugin`,
  });
  assert.deepEqual(
    decide({ idempotent: false, canFallBack: true }),
    decide({ idempotent: false }),
    "and it never falls back either: it might run twice",
  );
});

test("a code that is not retryable fails with no reason added", () => {
  assert.deepEqual(decide({ retryableCode: false, code: Code.InvalidArgument }), {
    action: "fail",
    why: "",
  });
  assert.deepEqual(
    decide({ retryableCode: false, code: Code.InvalidArgument, canFallBack: true }),
    { action: "fail", why: "" },
    "nor does it fall back",
  );
});

test("out of attempts: fail, or fall back when a unary call has a fallback", () => {
  assert.deepEqual(decide({ attempt: 3 }), { action: "fail", why: "; no attempts left" });
  assert.deepEqual(decide({ attempt: 3, canFallBack: true }), { action: "fallback" });
});

test("a spent budget stops retries of calls that may have been sent, not of unsent ones", () => {
  assert.deepEqual(decide({ budgetAllows: false }), {
    action: "fail",
    why: "; not retried: the retry budget is spent",
  });
  assert.deepEqual(decide({ budgetAllows: false, notSent: true }), { action: "retry" });
  assert.deepEqual(decide({ budgetAllows: false, canFallBack: true }), { action: "fallback" });
});

test("no time left: fail, naming the deadline when that is what ran out", () => {
  assert.deepEqual(decide({ timeLeft: false, code: Code.DeadlineExceeded }), {
    action: "fail",
    why: "; the call's deadline of 500 ms is used up",
  });
  assert.deepEqual(
    decide({ timeLeft: false, canFallBack: true }),
    { action: "fail", why: "" },
    "no fallback without time, and an Unavailable with some reason other than the deadline",
  );
  assert.deepEqual(decide({ timeLeft: false, idempotent: false }), {
    action: "fail",
    why: `; not retried: ${NAME} is not idempotent and the request may have reached the plugin`,
  });
});
