/**
 * The pure parts of the resilience layer, without a network: the retry
 * policy's idempotency rule, backoff and budget, the "never sent" rule that
 * decides whether a non-idempotent call may be retried, and the circuit
 * breaker's states (with an injected clock, so no test waits for time).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { CircuitBreaker, RetryBudget, RetryPolicy, neverSent } from "../src/cluster.js";
import { NotSentError } from "../src/resilience/retry.js";
import { errorFromRstCode } from "../src/transport/node-errors.js";
import { KV } from "../examples/kv/shared.js";

test("idempotency comes from the .proto's idempotency_level or an explicit list", () => {
  const policy = new RetryPolicy();
  assert.equal(policy.isIdempotent(KV.method.get), true, "Get is NO_SIDE_EFFECTS");
  assert.equal(policy.isIdempotent(KV.method.put), false);
  const explicit = new RetryPolicy({ idempotentMethods: ["example.kv.v1.KV/Put"] });
  assert.equal(explicit.isIdempotent(KV.method.put), true);
});

test("backoff is full-jitter exponential and capped", () => {
  const policy = new RetryPolicy({ baseDelayMs: 10, maxDelayMs: 50 });
  for (let i = 0; i < 200; i++) {
    assert.ok(policy.backoffMs(1) <= 10);
    assert.ok(policy.backoffMs(2) <= 20);
    assert.ok(policy.backoffMs(10) <= 50);
    assert.ok(policy.backoffMs(3) >= 0);
  }
  const spread = new Set(Array.from({ length: 50 }, () => Math.round(policy.backoffMs(3))));
  assert.ok(spread.size > 5, "jittered, not constant");
});

test("the retry budget stops retries when most calls fail and recovers with successes", () => {
  const budget = new RetryBudget({ maxTokens: 4, tokenRatio: 0.5 });
  assert.equal(budget.canRetry, true);
  budget.onFailure();
  budget.onFailure();
  assert.equal(budget.canRetry, false, "2 of 4 tokens left is not more than half");
  budget.onSuccess();
  assert.equal(budget.canRetry, true);
});

test("only transport-level facts observed on the host count as never sent; server text and established-socket errors do not", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
    code: "ECONNREFUSED",
    syscall: "connect",
  });
  const reset = Object.assign(new Error("read ECONNRESET"), {
    code: "ECONNRESET",
    syscall: "read",
  });
  const readUnreachable = Object.assign(new Error("read EHOSTUNREACH"), {
    code: "EHOSTUNREACH",
    syscall: "read",
  });
  const connectUnreachable = Object.assign(new Error("connect EHOSTUNREACH 10.0.0.1:80"), {
    code: "EHOSTUNREACH",
    syscall: "connect",
  });
  const nodeRefusedStream = Object.assign(
    new Error("Stream closed with error code NGHTTP2_REFUSED_STREAM"),
    { code: "ERR_HTTP2_STREAM_ERROR" },
  );
  const wrap = (cause: Error): ConnectError =>
    new ConnectError("x", Code.Unavailable, undefined, undefined, cause);
  assert.equal(neverSent(wrap(refused)), true);
  assert.equal(neverSent(wrap(connectUnreachable)), true);
  assert.equal(neverSent(new NotSentError("no instance", Code.Unavailable)), true);
  assert.equal(neverSent(wrap(nodeRefusedStream)), true);
  // The HTTP/2 client's error for a RST_STREAM(REFUSED_STREAM) the session received.
  const refusedStream = errorFromRstCode(http2.constants.NGHTTP2_REFUSED_STREAM);
  assert.equal(
    refusedStream?.rawMessage,
    "http/2 stream closed with error code REFUSED_STREAM (0x7)",
  );
  assert.equal(neverSent(refusedStream), true);
  assert.equal(neverSent(wrap(refusedStream as Error)), true);
  // The same text in a ConnectError the client did not make from a reset code is not evidence.
  assert.equal(
    neverSent(
      new ConnectError(
        "http/2 stream closed with error code REFUSED_STREAM (0x7)",
        Code.Unavailable,
      ),
    ),
    false,
  );
  // Another reset code may have reached the plugin.
  assert.equal(neverSent(errorFromRstCode(http2.constants.NGHTTP2_CANCEL)), false);
  // An established connection that later fails may have delivered the request.
  assert.equal(neverSent(wrap(readUnreachable)), false);
  assert.equal(neverSent(wrap(reset)), false);
  // Text a plugin returned (it arrives with response headers/trailers) is not evidence.
  const fromPlugin = (message: string): ConnectError =>
    new ConnectError(
      message,
      Code.Unavailable,
      new Headers({ "content-type": "application/json" }),
    );
  assert.equal(
    neverSent(fromPlugin("downstream: Stream closed with error code NGHTTP2_REFUSED_STREAM")),
    false,
  );
  assert.equal(
    neverSent(fromPlugin("http/2 stream closed with error code REFUSED_STREAM (0x7)")),
    false,
  );
  assert.equal(neverSent(fromPlugin("connect ECONNREFUSED 10.0.0.9:5432 (exit code 7)")), false);
  // Message text alone, even without metadata, is not evidence either.
  assert.equal(
    neverSent(
      new ConnectError("Stream closed with error code NGHTTP2_REFUSED_STREAM", Code.Unavailable),
    ),
    false,
  );
  assert.equal(
    neverSent(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
    false,
  );
  assert.equal(neverSent(new ConnectError("plain", Code.Unavailable)), false);
});

test("circuit breaker: closed, open after consecutive failures, half-open probes, closed again", () => {
  let now = 0;
  const states: string[] = [];
  const breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 1_000 }, () => now);
  breaker.onStateChange = (s) => states.push(s);
  breaker.acquire()?.(true);
  breaker.acquire()?.(false); // a success resets the count
  breaker.acquire()?.(true);
  breaker.acquire()?.(true);
  assert.equal(breaker.state, "closed");
  breaker.acquire()?.(true);
  assert.equal(breaker.state, "open");
  assert.equal(breaker.acquire(), undefined, "open rejects");
  now = 1_000;
  assert.equal(breaker.state, "half-open");
  const probe = breaker.acquire();
  assert.ok(probe !== undefined);
  assert.equal(breaker.acquire(), undefined, "one probe at a time");
  probe(true);
  assert.equal(breaker.state, "open", "a failed probe opens it again");
  now = 2_000;
  breaker.acquire()?.(false);
  assert.equal(breaker.state, "closed");
  assert.deepEqual(states, ["open", "half-open", "open", "half-open", "closed"]);
  // Application errors are not failures: the cluster reports them as successes.
  assert.equal(breaker.failureCodes.has(Code.NotFound), false);
  assert.equal(breaker.failureCodes.has(Code.Unavailable), true);
});
