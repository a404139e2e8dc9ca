/**
 * The framed FrameWriter assembles small frames in place in shared 64 KiB
 * batches and hands views of them to the socket. Bytes handed to a socket
 * must never be written into again while the socket may still hold them:
 * this floods a slow reader over real sockets (TCP, a unix socket, TLS both
 * ways) so that the writer's socket queues (writableNeedDrain), is corked
 * part of the time, and gets frames that do not fit what is left of a batch,
 * and checks every byte of every frame as it arrives.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { FrameReader, FrameType, FrameWriter } from "../src/transport/framed/frames.js";
import { MessageEncoder } from "../src/transport/framed/encode.js";
import { makeTestPki, tempDir } from "./helpers.js";

const FRAMES = 6000;
const pki = makeTestPki("framed-flood-");
const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** The payload byte `j` of frame `i`: every frame's bytes differ from its neighbours'. */
const byteOf = (i: number, j: number): number => (i * 31 + j * 7 + (i >>> 8)) & 0xff;

/** Frame sizes from a seeded generator: mostly small, some just under the copy limit, some large. */
function sizes(): number[] {
  let seed = 0x9e3779b9;
  const rand = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  return Array.from({ length: FRAMES }, () => {
    const r = rand();
    if (r < 0.85) return Math.floor(rand() * 3000); // 0 included
    if (r < 0.97) return 10_000 + Math.floor(rand() * 6384); // up to 16383: copied, rarely fits a batch's rest
    return 16_384 + Math.floor(rand() * 50_000); // written as it is
  });
}

type Kind = "tcp" | "unix" | "tls client writes" | "tls server writes";

/** A connected pair over a real socket: `out` is written by the FrameWriter, `in` read slowly. */
async function pair(kind: Kind): Promise<{ out: net.Socket; in: net.Socket }> {
  const secure = kind.startsWith("tls");
  const server = secure
    ? tls.createServer({
        cert: readFileSync(join(pki, "server.crt")),
        key: readFileSync(join(pki, "server.key")),
      })
    : net.createServer();
  servers.push(server);
  const accepted = once(server, secure ? "secureConnection" : "connection") as Promise<
    [net.Socket]
  >;
  if (kind === "unix") server.listen(join(tempDir("framed-flood-sock-"), "s.sock"));
  else server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  let client: net.Socket;
  if (typeof address === "string") client = net.connect(address);
  else {
    assert.ok(address !== null);
    client = secure
      ? tls.connect({
          host: "127.0.0.1",
          port: address.port,
          ca: readFileSync(join(pki, "ca.crt")),
          servername: "localhost",
        })
      : net.connect(address.port, "127.0.0.1");
  }
  await once(client, secure ? "secureConnect" : "connect");
  const [peer] = await accepted;
  return kind === "tls server writes" ? { out: peer, in: client } : { out: client, in: peer };
}

/**
 * The bytes of a frame sent through encoded() (a BytesValue: tag, varint
 * length, value), or undefined if `payload` is not one.
 */
function bytesValueOf(payload: Uint8Array): Uint8Array | undefined {
  if (payload.length === 0) return payload; // an empty value is not written
  if (payload[0] !== 0x0a) return undefined;
  let n = 0;
  let at = 1;
  for (let shift = 0; at < payload.length; shift += 7) {
    const b = payload[at++] as number;
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  return at + n === payload.length ? payload.subarray(at) : undefined;
}

const cases = [
  ...(["tcp", "unix", "tls client writes", "tls server writes"] as const).map(
    (kind) => [kind, false] as const,
  ),
  // Every other frame a flat message through encoded(): a large one leaves in
  // one buffer with the small frames batched before it copied in front.
  ...(["tcp", "tls client writes"] as const).map((kind) => [kind, true] as const),
];

for (const [kind, mixed] of cases) {
  const how = mixed ? ", every other frame an encoded message" : "";
  test(`FrameWriter over ${kind}${how}: a flood to a slow reader arrives byte for byte, whatever the socket holds`, async (t) => {
    const { out, in: inp } = await pair(kind);
    t.after(() => {
      out.destroy();
      inp.destroy();
    });
    const lengths = sizes();
    let received = 0;
    const wrong: string[] = [];
    const reader = new FrameReader((type, id, frame) => {
      const i = received++;
      const payload = mixed && i % 2 === 1 ? (bytesValueOf(frame) ?? frame) : frame;
      if (type !== FrameType.message || id !== i + 1 || payload.length !== lengths[i]) {
        wrong.push(`frame ${i}: type ${type} id ${id} length ${payload.length}`);
        return;
      }
      for (let j = 0; j < payload.length; j++) {
        if (payload[j] !== byteOf(i, j)) {
          wrong.push(`frame ${i} (${payload.length} bytes): byte ${j} is ${payload[j]}`);
          return;
        }
      }
    });
    // The reader starts paused, then takes one chunk per turn of the event loop.
    inp.pause();
    inp.on("data", (chunk: Buffer) => {
      reader.push(chunk);
      inp.pause();
      setImmediate(() => inp.resume());
    });
    const done = new Promise<void>((resolve) => {
      const check = (): void => {
        if (received >= FRAMES || wrong.length > 0) resolve();
      };
      inp.on("data", check);
      inp.once("close", resolve);
    });

    const writer = new FrameWriter(out);
    const encoder = new MessageEncoder();
    // Small payloads come from one scratch buffer rewritten after each frame():
    // the writer must have copied them.
    const scratch = Buffer.alloc(mixed ? 80 * 1024 : 16 * 1024);
    let queuedWhileFull = 0;
    let corked = 0;
    for (let i = 0; i < FRAMES; i++) {
      const length = lengths[i] as number;
      const encoded = mixed && i % 2 === 1;
      // encoded() copies every message, large ones too: their bytes come from the scratch buffer.
      const payload =
        length < 16 * 1024 || encoded ? scratch.subarray(0, length) : Buffer.alloc(length);
      for (let j = 0; j < length; j++) payload[j] = byteOf(i, j);
      if (writer.needDrain) queuedWhileFull++;
      if (encoded) {
        encoder.measure(BytesValueSchema, create(BytesValueSchema, { value: payload }), Infinity);
        encoder.send(writer, FrameType.message, i + 1);
      } else writer.frame(FrameType.message, i + 1, payload);
      scratch.fill(0xee);
      if (i % 97 === 0) {
        // A burst ends: the tick flushes what is batched. Some bursts are corked.
        if (i % 3 === 0 && out.writableCorked === 0) {
          out.cork();
          corked++;
        }
        await new Promise(setImmediate);
        if (out.writableCorked > 0 && i % 2 === 0) out.uncork();
      }
      // After the first third, let the reader go while the writer keeps writing.
      if (i === Math.floor(FRAMES / 3)) inp.resume();
    }
    while (out.writableCorked > 0) out.uncork();
    writer.flush();
    inp.resume();
    await done;
    assert.deepEqual(wrong, []);
    assert.equal(received, FRAMES);
    assert.equal(reader.partial, false);
    assert.ok(
      queuedWhileFull > 0,
      "the writer's socket was over its high-water mark while frames were written",
    );
    assert.ok(corked > 0, "some bursts were written to a corked socket");
  });
}
