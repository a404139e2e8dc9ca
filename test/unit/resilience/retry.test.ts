/**
 * src/resilience/retry.ts: the retry budget's arithmetic, the policy's
 * defaults, and every socket fact that proves a call never left the host.
 * (The idempotency levels and backoff caps are in unit-decisions.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  NotSentError,
  RetryBudget,
  RetryPolicy,
  neverSent,
} from "../../../src/resilience/retry.js";
import { KV } from "../../../examples/kv/shared.js";

const nodeError = (code: string, syscall?: string): Error =>
  Object.assign(new Error(`${syscall ?? "x"} ${code}`), { code, syscall });
const wrapped = (cause: unknown): ConnectError =>
  new ConnectError("x", Code.Unavailable, undefined, undefined, cause);

test("budget defaults: 10 tokens, a failure costs one, a success gives back 0.1, retries while more than half are left", () => {
  const budget = new RetryBudget();
  assert.equal(budget.available, 10);
  budget.onSuccess();
  assert.equal(budget.available, 10, "never above the maximum");
  for (let i = 0; i < 4; i++) budget.onFailure();
  assert.equal(budget.available, 6);
  assert.equal(budget.canRetry, true);
  budget.onFailure();
  assert.equal(budget.available, 5);
  assert.equal(budget.canRetry, false, "5 of 10 is not more than half");
  budget.onSuccess();
  assert.ok(Math.abs(budget.available - 5.1) < 1e-9, String(budget.available));
  assert.equal(budget.canRetry, true);
  for (let i = 0; i < 20; i++) budget.onFailure();
  assert.equal(budget.available, 0, "never below zero");
  budget.onSuccess();
  assert.ok(Math.abs(budget.available - 0.1) < 1e-9, "a long outage recovers from zero");
});

test("a policy's budget takes its options; maxAttempts defaults to 3 and is at least 1", () => {
  const policy = new RetryPolicy({ budget: { maxTokens: 2, tokenRatio: 1 } });
  assert.equal(policy.budget.available, 2);
  policy.budget.onFailure();
  assert.equal(policy.budget.canRetry, false);
  policy.budget.onSuccess();
  assert.equal(policy.budget.available, 2);
  assert.equal(new RetryPolicy({ maxAttempts: 5 }).maxAttempts, 5);
  assert.equal(new RetryPolicy({ maxAttempts: -2 }).maxAttempts, 1);
  assert.equal(
    new RetryPolicy().isIdempotent(KV.method.put),
    false,
    "no method is listed by default",
  );
});

test("never sent: each connect() and DNS failure, and only from those syscalls", () => {
  const proofs: Array<[string, string[]]> = [
    ["ECONNREFUSED", ["connect"]],
    ["EHOSTUNREACH", ["connect"]],
    ["ENETUNREACH", ["connect"]],
    ["ENOTFOUND", ["getaddrinfo", "queryA", "queryAaaa"]],
    ["EAI_AGAIN", ["getaddrinfo", "queryA", "queryAaaa"]],
  ];
  for (const [code, syscalls] of proofs) {
    for (const syscall of syscalls) {
      assert.equal(neverSent(nodeError(code, syscall)), true, `${syscall} ${code}`);
      assert.equal(
        neverSent(wrapped(nodeError(code, syscall))),
        true,
        `wrapped ${syscall} ${code}`,
      );
    }
    for (const syscall of ["read", "write", "", undefined]) {
      assert.equal(neverSent(nodeError(code, syscall)), false, `${syscall} ${code}`);
    }
  }
  assert.equal(
    neverSent(nodeError("ENOTFOUND", "connect")),
    false,
    "a DNS code needs a DNS syscall",
  );
  assert.equal(neverSent(nodeError("ECONNREFUSED", "getaddrinfo")), false);
});

test("never sent: Node's refused-stream error by its exact message, no other reset code", () => {
  const rst = (message: string): Error =>
    Object.assign(new Error(message), { code: "ERR_HTTP2_STREAM_ERROR" });
  assert.equal(neverSent(rst("Stream closed with error code NGHTTP2_REFUSED_STREAM")), true);
  assert.equal(neverSent(rst("Stream closed with error code NGHTTP2_CANCEL")), false);
  assert.equal(neverSent(rst("Stream closed with error code NGHTTP2_INTERNAL_ERROR")), false);
  const otherCode = Object.assign(
    new Error("Stream closed with error code NGHTTP2_REFUSED_STREAM"),
    {
      code: "ERR_HTTP2_SESSION_ERROR",
    },
  );
  assert.equal(neverSent(otherCode), false);
});

test("never sent: an answer from the server anywhere in the chain overrides any socket fact", () => {
  const answered = new ConnectError(
    "upstream refused",
    Code.Unavailable,
    new Headers({ "x-from": "plugin" }),
    undefined,
    nodeError("ECONNREFUSED", "connect"),
  );
  assert.equal(neverSent(answered), false);
  assert.equal(neverSent(wrapped(answered)), false, "deeper in the chain");
  // A NotSentError carrying metadata is still the host's own refusal.
  const refused = new NotSentError("circuit open", Code.Unavailable, new Headers({ "x-a": "1" }));
  assert.equal(neverSent(refused), true);
  assert.equal(refused.notSent, true);
  // An empty metadata object is not an answer.
  assert.equal(neverSent(wrapped(nodeError("ECONNREFUSED", "connect"))), true);
});

test("never sent: anything that is not an error object proves nothing, and a cause loop ends", () => {
  for (const value of [undefined, null, "connect ECONNREFUSED", 42, { notSent: "yes" }]) {
    assert.equal(neverSent(value), false, JSON.stringify(value));
  }
  assert.equal(neverSent({ notSent: true }), true);
  const loop: { cause?: unknown } = new Error("loop");
  loop.cause = loop;
  assert.equal(neverSent(loop), false);
  // The chain is followed eight deep.
  let deep: unknown = nodeError("ECONNREFUSED", "connect");
  for (let i = 0; i < 7; i++) deep = wrapped(deep);
  assert.equal(neverSent(deep), true, "found at depth 8");
  assert.equal(neverSent(wrapped(deep)), false, "not past it");
});
