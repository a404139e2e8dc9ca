/**
 * On a TLS socket, FrameWriter writes a large frame of a message toBinary
 * encoded (one that is not flat, framed by frame()) as one buffer, in the
 * memory kept from the large frame before (frames.ts, assemble()): node's
 * TLS layer joins a writev's buffers (header and payload) into one new
 * buffer before encrypting, a 1 MiB copy into new memory per frame. Over a
 * real TLS connection on a unix socket (AutoMTLS certificates, our ends'
 * TLS options): one write per frame, sequential frames share one buffer,
 * frames queued behind a peer that does not read keep their own bytes, and
 * small frames queued in the same tick go in front in the same buffer.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type TLSSocket } from "node:tls";
import { create, fromBinary } from "@bufbuild/protobuf";
import { OptionSchema } from "@bufbuild/protobuf/wkt";
import { generateAutoMtlsCertificate } from "../../../../src/security/auto-mtls.js";
import { clientTlsDefaults, serverTlsDefaults } from "../../../../src/transport/tls-defaults.js";
import { FrameReader, FrameType, FrameWriter } from "../../../../src/transport/framed/frames.js";
import { MessageEncoder } from "../../../../src/transport/framed/encode.js";

const MiB = 1024 * 1024;

/** A TLS connection over a unix socket; `writes`: each buffer the writer's side wrote. */
async function tlsPair(
  t: TestContext,
): Promise<{ ours: TLSSocket; peer: TLSSocket; writes: Buffer[] }> {
  const dir = mkdtempSync(join(tmpdir(), "frame-writer-tls-"));
  const server = generateAutoMtlsCertificate("P-256");
  const client = generateAutoMtlsCertificate("P-256");
  const listener = createServer({
    ...serverTlsDefaults(),
    cert: server.certPem,
    key: server.keyPem,
    ca: client.certPem,
    requestCert: true,
    rejectUnauthorized: true,
  }).listen(join(dir, "s.sock"));
  await once(listener, "listening");
  const accepted = once(listener, "secureConnection") as Promise<[TLSSocket]>;
  const ours = connect({
    ...clientTlsDefaults(),
    path: join(dir, "s.sock"),
    cert: client.certPem,
    key: client.keyPem,
    ca: server.certPem,
    servername: "localhost",
  });
  await once(ours, "secureConnect");
  const [peer] = await accepted;
  t.after(() => {
    ours.destroy();
    peer.destroy();
    listener.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const writes: Buffer[] = [];
  const write = ours.write.bind(ours) as (...args: unknown[]) => boolean;
  (ours as unknown as { write: (...args: unknown[]) => boolean }).write = (...args) => {
    writes.push(args[0] as Buffer);
    return write(...args);
  };
  return { ours, peer, writes };
}

/** Frames one Option (not flat: its value is a message) whose Any holds `size` bytes of `fill`. */
function send(writer: FrameWriter, id: number, size: number, fill: number): void {
  const encoder = new MessageEncoder();
  const message = create(OptionSchema, {
    name: `option ${id}`,
    value: { typeUrl: "t", value: new Uint8Array(size).fill(fill) },
  });
  encoder.measure(OptionSchema, message, Infinity);
  assert.ok(encoder.bytes !== undefined, "encoded by toBinary: framed by frame()");
  encoder.send(writer, FrameType.message, id);
}

/** Each message frame `peer` delivers: id, name, and fill byte and length of its bytes. */
function received(peer: TLSSocket): Array<[number, string, number, number, boolean]> {
  const seen: Array<[number, string, number, number, boolean]> = [];
  const reader = new FrameReader((type, id, payload) => {
    if (type !== FrameType.message) return;
    const option = fromBinary(OptionSchema, payload);
    const value = option.value?.value ?? new Uint8Array(0);
    const fill = value[0] ?? -1;
    seen.push([id, option.name, fill, value.length, value.every((b) => b === fill)]);
  });
  peer.on("data", (chunk: Buffer) => reader.push(chunk));
  return seen;
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
  await new Promise(setImmediate); // the write's callback
}

const expected = (ids: number[]): Array<[number, string, number, number, boolean]> =>
  ids.map((i) => [i, `option ${i}`, i, MiB, true]);

test("FrameWriter (TLS socket): a large toBinary-encoded message is one write, into the memory kept from the frame before", async (t) => {
  const { ours, peer, writes } = await tlsPair(t);
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  for (let i = 1; i <= 3; i++) {
    send(writer, i, MiB, i);
    await until(() => seen.length === i);
  }
  assert.deepEqual(seen, expected([1, 2, 3]));
  assert.equal(writes.length, 3, "one buffer per frame (header and payload together)");
  assert.equal(writes[1]?.buffer, writes[0]?.buffer, "the second frame reuses the first's memory");
  assert.equal(writes[2]?.buffer, writes[0]?.buffer, "and so does the third");
});

test("FrameWriter (TLS socket): large toBinary-encoded frames queued behind a peer that does not read keep their own bytes; small frames of the same tick go in front, in the same buffer", async (t) => {
  const { ours, peer, writes } = await tlsPair(t);
  peer.pause();
  const seen = received(peer);
  const writer = new FrameWriter(ours);
  for (let i = 1; i <= 6; i++) {
    writer.frame(FrameType.end, 100 + i);
    send(writer, i, MiB, i);
    await new Promise(setImmediate);
  }
  assert.ok(ours.writableLength > MiB, "the writes are backed up");
  peer.resume();
  await until(() => seen.length === 6);
  assert.deepEqual(seen, expected([1, 2, 3, 4, 5, 6]));
  assert.equal(writes.length, 6, "each end frame went out with the message after it");
  assert.equal(new Set(writes.map((w) => w.buffer)).size, 6, "memory of its own while in flight");
  for (const [i, w] of writes.entries()) {
    assert.equal(w.readUInt32BE(0), 0, "an end frame first: no payload");
    assert.equal(w[4], FrameType.end);
    assert.equal(w.readUInt32BE(5), 101 + i);
  }
});
