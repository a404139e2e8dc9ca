/**
 * src/transport/tunnel-stream.ts: the byte stream a callback tunnel's
 * messages carry. Writes come out as chunks in order, with backpressure;
 * delivered chunks are read; the end or destruction ends the chunks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { TunnelStream } from "../../../src/transport/tunnel-stream.js";

test("written bytes come out of outgoing() in order; delivered bytes are read", async () => {
  const stream = new TunnelStream();
  const read: string[] = [];
  stream.on("data", (chunk: Buffer) => read.push(chunk.toString()));
  stream.write("a");
  stream.write("bc");
  stream.deliver(new TextEncoder().encode("xyz"));
  stream.deliver(new Uint8Array(0));
  const out = stream.outgoing();
  assert.equal(Buffer.from((await out.next()).value as Uint8Array).toString(), "a");
  assert.equal(Buffer.from((await out.next()).value as Uint8Array).toString(), "bc");
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(read, ["xyz"]);
  stream.destroy();
  assert.equal((await out.next()).done, true);
});

test("a write completes only once outgoing() has taken it (backpressure)", async () => {
  const stream = new TunnelStream();
  let written = false;
  stream.write("chunk", () => (written = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(written, false);
  const out = stream.outgoing();
  await out.next();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(written, true);
  stream.destroy();
});

test("outgoing() waits for writes, and ends when the stream ends", async () => {
  const stream = new TunnelStream();
  const out = stream.outgoing();
  const next = out.next();
  stream.write("late");
  assert.equal(Buffer.from((await next).value as Uint8Array).toString(), "late");
  const end = out.next();
  stream.end();
  assert.equal((await end).done, true);
});
