/**
 * FrameWriter keeps the buffer of a large encoded frame once the socket has
 * written it, and encodes the next large frame into it (frames.ts,
 * large()): over real unix sockets, that sequential 1 MiB frames share one
 * buffer, that a buffer still being written is never reused (frames queued
 * behind a peer that does not read arrive with their own bytes), and the
 * bounds: frames over 4 MiB, and a buffer left idle for a second, are not kept.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { FrameReader, FrameType, FrameWriter } from "../../../../src/transport/framed/frames.js";
import { MessageEncoder } from "../../../../src/transport/framed/encode.js";
import { collectingSink } from "./collecting-sink.js";

const MiB = 1024 * 1024;

/** A connected pair over a unix socket in a fresh folder; `buffers`: the ArrayBuffer of each write the writer's side made. */
async function pair(
  t: TestContext,
): Promise<{ ours: Socket; peer: Socket; buffers: ArrayBufferLike[] }> {
  const dir = mkdtempSync(join(tmpdir(), "frame-writer-reuse-"));
  const server = createServer().listen(join(dir, "s.sock"));
  await once(server, "listening");
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const ours = connect(join(dir, "s.sock"));
  await once(ours, "connect");
  const [peer] = await accepted;
  t.after(() => {
    ours.destroy();
    peer.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const buffers: ArrayBufferLike[] = [];
  const write = ours.write.bind(ours) as (...args: unknown[]) => boolean;
  (ours as unknown as { write: (...args: unknown[]) => boolean }).write = (...args) => {
    buffers.push((args[0] as Buffer).buffer);
    return write(...args);
  };
  return { ours, peer, buffers };
}

/** Frames one BytesValue of `size` bytes filled with `fill`. */
function send(writer: FrameWriter, id: number, size: number, fill: number): void {
  const encoder = new MessageEncoder();
  encoder.measure(
    BytesValueSchema,
    create(BytesValueSchema, { value: new Uint8Array(size).fill(fill) }),
    Infinity,
  );
  encoder.send(writer, FrameType.message, id);
}

/** Each frame `peer` delivers: its id and the fill byte and length of its BytesValue's value. */
function received(peer: Socket): Array<{ id: number; fill: number; size: number; same: boolean }> {
  const seen: Array<{ id: number; fill: number; size: number; same: boolean }> = [];
  const reader = new FrameReader((_type, id, payload) => {
    const value = fromBinary(BytesValueSchema, payload).value;
    const fill = value[0] ?? -1;
    seen.push({ id, fill, size: value.length, same: value.every((b) => b === fill) });
  });
  peer.on("data", (chunk: Buffer) => reader.push(chunk));
  return seen;
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
  await new Promise(setImmediate); // the write's callback, after its last byte left
}

test("FrameWriter (unix socket): sequential 1 MiB encoded frames are written from one buffer, reused once each write completed", async (t) => {
  const { ours, peer, buffers } = await pair(t);
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  for (let i = 1; i <= 3; i++) {
    send(writer, i, MiB, i);
    await until(() => seen.length === i);
  }
  assert.deepEqual(
    seen.map((s) => [s.id, s.fill, s.size, s.same]),
    [1, 2, 3].map((i) => [i, i, MiB, true]),
  );
  assert.equal(buffers.length, 3);
  assert.equal(buffers[1], buffers[0], "the second frame reuses the first's buffer");
  assert.equal(buffers[2], buffers[0], "and so does the third");
});

test("FrameWriter (unix socket): large frames queued behind a peer that does not read keep their own bytes; none is encoded into a buffer still being written", async (t) => {
  const { ours, peer, buffers } = await pair(t);
  peer.pause();
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  // One frame per tick, far more than the socket's kernel buffer takes: the
  // writes stay in flight while the next frames are encoded.
  for (let i = 1; i <= 8; i++) {
    send(writer, i, MiB, i);
    await new Promise(setImmediate);
  }
  assert.ok(ours.writableLength > MiB, "the writes are backed up");
  peer.resume();
  await until(() => seen.length === 8);
  assert.deepEqual(
    seen.map((s) => [s.id, s.fill, s.size, s.same]),
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => [i, i, MiB, true]),
  );
  assert.equal(new Set(buffers).size, 8, "a buffer per frame while none was written");
  send(writer, 9, MiB, 9);
  await until(() => seen.length === 9);
  assert.ok(buffers.slice(0, 8).includes(buffers[8] as ArrayBufferLike), "then one is reused");
  assert.deepEqual(seen[8], { id: 9, fill: 9, size: MiB, same: true });
});

test("FrameWriter (unix socket): a frame over 4 MiB, or after a second idle, gets a new buffer", async (t) => {
  const { ours, peer, buffers } = await pair(t);
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  send(writer, 1, 5 * MiB, 1);
  await until(() => seen.length === 1);
  send(writer, 2, 5 * MiB, 2);
  await until(() => seen.length === 2);
  assert.notEqual(buffers[1], buffers[0], "no 5 MiB buffer is kept");
  send(writer, 3, MiB, 3);
  await until(() => seen.length === 3);
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  send(writer, 4, MiB, 4);
  await until(() => seen.length === 4);
  assert.notEqual(buffers[3], buffers[2], "the 1 MiB buffer was let go after a second idle");
  assert.deepEqual(
    seen.map((s) => [s.id, s.fill, s.size, s.same]),
    [
      [1, 1, 5 * MiB, true],
      [2, 2, 5 * MiB, true],
      [3, 3, MiB, true],
      [4, 4, MiB, true],
    ],
  );
});

test("FrameWriter (fake sink that keeps its chunks after their callbacks, as a callback tunnel's stream does): every large frame gets memory of its own", async () => {
  const { socket: sink, writes: chunks } = collectingSink();
  const writer = new FrameWriter(sink);
  for (let i = 1; i <= 3; i++) {
    send(writer, i, MiB, i);
    await new Promise(setImmediate);
  }
  const seen: Array<[number, number, boolean]> = [];
  const reader = new FrameReader((_type, id, payload) => {
    const value = Buffer.from(payload).subarray(4);
    seen.push([id, value[0] ?? -1, value.every((b) => b === value[0])]);
  });
  for (const chunk of chunks) reader.push(chunk);
  assert.deepEqual(seen, [
    [1, 1, true],
    [2, 2, true],
    [3, 3, true],
  ]);
  assert.equal(new Set(chunks.map((c) => c.buffer)).size, 3);
});

test("FrameWriter (unix socket): a socket that closes lets its kept buffer and idle timer go at once, also when frames were still being written", async (t) => {
  const { ours, peer } = await pair(t);
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  const state = writer as unknown as { spare: ArrayBuffer | undefined; spareTimer: unknown };
  send(writer, 1, MiB, 1);
  await until(() => seen.length === 1);
  assert.ok(state.spare !== undefined, "the written frame's buffer is kept");
  assert.ok(state.spareTimer !== undefined);
  ours.destroy();
  await once(ours, "close");
  assert.equal(state.spare, undefined, "let go on close, not a second later");
  assert.equal(state.spareTimer, undefined, "no timer left behind");

  // Frames in flight when their socket is destroyed: their callbacks (with an error) come before 'close'.
  const second = await pair(t);
  second.peer.pause();
  const w2 = new FrameWriter(second.ours);
  const s2 = w2 as unknown as { spare: ArrayBuffer | undefined; spareTimer: unknown };
  for (let i = 1; i <= 4; i++) {
    send(w2, i, MiB, i);
    await new Promise(setImmediate);
  }
  second.ours.on("error", () => {});
  second.ours.destroy();
  await once(second.ours, "close");
  await new Promise(setImmediate);
  assert.equal(s2.spare, undefined);
  assert.equal(s2.spareTimer, undefined);
});

test("FrameWriter (unix socket): a kept buffer over twice the size of the frames that follow gives way to theirs (not held and unused while they flow)", async (t) => {
  const { ours, peer, buffers } = await pair(t);
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  send(writer, 1, 3 * MiB, 1);
  await until(() => seen.length === 1);
  for (let i = 2; i <= 4; i++) {
    send(writer, i, MiB, i);
    await until(() => seen.length === i);
  }
  assert.notEqual(buffers[1], buffers[0], "3 MiB is over twice what a 1 MiB frame needs");
  assert.equal(buffers[2], buffers[1], "the next 1 MiB frame reuses the first one's buffer");
  assert.equal(buffers[3], buffers[1]);
  assert.deepEqual(
    seen.map((s) => [s.id, s.fill, s.size, s.same]),
    [
      [1, 1, 3 * MiB, true],
      [2, 2, MiB, true],
      [3, 3, MiB, true],
      [4, 4, MiB, true],
    ],
  );
});
