/**
 * The view handlers get of their context (handlerView): `signal` an own
 * property however the handler copies the context.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createContextValues } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { ContextFactory } from "../../../src/transport/handler-context.js";
import { handlerView } from "../../../src/transport/signal-view.js";

function view() {
  const ctx = new ContextFactory().create({
    service: KV,
    method: KV.method.get,
    protocolName: "test",
    url: "/example.kv.v1.KV/Get",
    timeoutMs: 60_000,
    requestHeader: new Headers(),
    contextValues: createContextValues(),
  });
  return { ctx, view: handlerView(ctx) };
}

test("a copy made from the view's property descriptors has the call's signal (no getter reading itself)", () => {
  const { ctx, view: v } = view();
  try {
    const copies = [
      { ...v },
      Object.defineProperties({}, Object.getOwnPropertyDescriptors(v)),
      Object.create(Object.getPrototypeOf(v) as object, Object.getOwnPropertyDescriptors(v)),
    ] as { signal: AbortSignal }[];
    for (const copy of copies) assert.equal(copy.signal, ctx.signal);
    assert.ok(Object.keys(v).includes("signal"));
  } finally {
    ctx.abort(new Error("test over"));
  }
});
