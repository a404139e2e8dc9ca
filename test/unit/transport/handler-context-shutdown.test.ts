/**
 * ContextFactory (src/transport/handler-context.ts) and its shutdown
 * signal: calls live when it aborts are aborted with its reason, and calls
 * made after it (also when it aborted before the factory was made) start
 * aborted, their deadline never armed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { ContextFactory } from "../../../src/transport/handler-context.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";

const call = (factory: ContextFactory, timeoutMs?: number) =>
  factory.create({
    service: KV,
    method: KV.method.get,
    protocolName: "test",
    url: "/example.kv.v1.KV/Get",
    timeoutMs,
    requestHeader: new Headers(),
    contextValues: createContextValues(),
  });

const shutdown = (): ConnectError =>
  new ConnectError("the plugin is shutting down", Code.Unavailable);

test("a call live at shutdown is aborted with the shutdown's reason; later calls start aborted", () => {
  const controller = new AbortController();
  const factory = new ContextFactory(controller.signal);
  const live = call(factory, 60_000);
  assert.equal(live.signal.aborted, false);
  const reason = shutdown();
  controller.abort(reason);
  assert.equal(live.signal.aborted, true);
  assert.equal(live.signal.reason, reason);
  const later = call(factory, 60_000);
  assert.equal(later[CALL_ABORT].aborted, true);
  assert.equal(later.signal.reason, reason);
});

test("a factory made after its shutdown signal aborted starts every call aborted", () => {
  const reason = shutdown();
  const factory = new ContextFactory(AbortSignal.abort(reason));
  const ctx = call(factory, 60_000);
  assert.equal(ctx.signal.aborted, true);
  assert.equal(ctx.signal.reason, reason);
  assert.equal(
    ConnectError.from(ctx.signal.reason).message,
    "[unavailable] the plugin is shutting down",
  );
});

test("without a shutdown signal, a call ends only by its own deadline or abort", async () => {
  const factory = new ContextFactory();
  const ctx = call(factory, 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(ctx.signal.aborted, true);
  assert.equal(ConnectError.from(ctx.signal.reason).code, Code.DeadlineExceeded);
  assert.equal(
    ConnectError.from(ctx.signal.reason).message,
    "[deadline_exceeded] the operation timed out",
  );
});
