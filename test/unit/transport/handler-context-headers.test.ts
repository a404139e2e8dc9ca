/**
 * The response header and trailer of ContextFactory's contexts
 * (src/transport/handler-context.ts): own properties by default (a spread
 * of the context keeps them), or made on first read with
 * `responseHeadersOnRead`, where madeResponseHeader() tells a writer
 * whether there is anything to send without making them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createContextValues } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { ContextFactory } from "../../../src/transport/handler-context.js";
import { PairsHeaders } from "../../../src/transport/lazy-pairs-headers.js";

const call = (
  options: { responseHeadersOnRead?: boolean; lazyResponseHeaders?: boolean } = {},
): ReturnType<ContextFactory["create"]> =>
  new ContextFactory().create({
    service: KV,
    method: KV.method.get,
    protocolName: "test",
    url: "/example.kv.v1.KV/Get",
    timeoutMs: undefined,
    requestHeader: new Headers(),
    contextValues: createContextValues(),
    ...options,
  });

test("by default the response header and trailer are own Headers, made with the context", () => {
  const ctx = call();
  assert.ok(ctx.madeResponseHeader() instanceof Headers);
  assert.ok(ctx.madeResponseTrailer() instanceof Headers);
  assert.equal(ctx.madeResponseHeader(), ctx.responseHeader);
  assert.equal(ctx.madeResponseTrailer(), ctx.responseTrailer);
  // invoke.ts' contextFor copies a context with a spread: it must keep them.
  const copy = { ...ctx };
  assert.equal(copy.responseHeader, ctx.responseHeader);
  assert.equal(copy.responseTrailer, ctx.responseTrailer);
});

test("the framed server's contexts keep PairsHeaders", () => {
  const ctx = call({ lazyResponseHeaders: true });
  assert.ok(ctx.responseHeader instanceof PairsHeaders);
  assert.ok(ctx.responseTrailer instanceof PairsHeaders);
  assert.equal(ctx.madeResponseHeader(), ctx.responseHeader);
});

test("responseHeadersOnRead: nothing is made until read; then one Headers each, kept, with what was set", () => {
  const ctx = call({ responseHeadersOnRead: true });
  assert.equal(ctx.madeResponseHeader(), undefined);
  assert.equal(ctx.madeResponseTrailer(), undefined);
  const header = ctx.responseHeader;
  assert.ok(header instanceof Headers);
  assert.equal(ctx.madeResponseHeader(), header);
  assert.equal(
    ctx.madeResponseTrailer(),
    undefined,
    "reading the header does not make the trailer",
  );
  header.set("x-a", "1");
  assert.equal(ctx.responseHeader, header, "the same object on every read");
  assert.equal(ctx.madeResponseHeader()?.get("x-a"), "1");
  ctx.responseTrailer.append("x-t", "2");
  assert.ok(ctx.responseTrailer instanceof Headers);
  assert.equal(ctx.madeResponseTrailer()?.get("x-t"), "2");
});

test("responseHeadersOnRead: destructuring reads the getters; the other fields stay own properties", () => {
  const ctx = call({ responseHeadersOnRead: true });
  const { responseHeader, responseTrailer } = ctx;
  assert.ok(responseHeader instanceof Headers);
  assert.ok(responseTrailer instanceof Headers);
  assert.equal(ctx.madeResponseHeader(), responseHeader);
  const copy = { ...ctx };
  assert.equal(copy.url, "/example.kv.v1.KV/Get");
  assert.equal(copy.method, KV.method.get);
});
