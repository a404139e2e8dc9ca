/**
 * The framed transport's guarantees, each checked so that a slip fails a
 * test: every byte of large messages arrives unchanged (both directions,
 * across the copy limit and the megabyte boundary, on plain and TLS
 * sockets), the frame size limit is exactly 256 MiB, the launch token is
 * checked on the framed wire as on HTTP/2, and the host's `transports`
 * option decides the protocol that calls really use.
 */
import { spawn } from "node:child_process";
import * as net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { GetResponseSchema, KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { subprocess } from "../src/index.js";
import { parseHandshakeLine } from "../src/protocol/handshake-line.js";
import { createFramedTransport } from "../src/transport/framed/client.js";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  encodeFrame,
  readFrames,
} from "../src/transport/framed/frames.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { decode, kvClient, makeTestPki, tempDir, waitFor } from "./helpers.js";
import { fileURLToPath } from "node:url";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("frame reader", () => {
  // The slowloris clock times each frame, not the connection: a peer that
  // streams frames without a pause, every chunk ending inside the next frame,
  // is never "incomplete" at a chunk boundary yet finishes a frame in each
  // chunk. It was cut off once timeoutMs had passed since the first of them.
  const framings = [
    {
      name: "framed transport",
      reader: (onFrame: () => void) => new FrameReader(onFrame),
      preface: Buffer.alloc(0),
      frame: (payload: Buffer) => encodeFrame(FrameType.message, 1, payload),
    },
  ];
  for (const framing of framings) {
    test(`${framing.name}: frames streamed without a pause past the timeout are not cut off; a stalled frame still is`, async () => {
      const timeoutMs = 1_000;
      let frames = 0;
      let cutOff: { why: string; at: number } | undefined;
      const reader = framing.reader(() => frames++);
      const server = net.createServer();
      const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as net.AddressInfo;
      const client = net.connect(port, "127.0.0.1");
      client.setNoDelay(true);
      const socket = await accepted;
      let received = 0;
      let written = 0;
      socket.on("data", (chunk: Buffer) => (received += chunk.length));
      readFrames(socket, reader, timeoutMs, (why) => {
        cutOff = { why, at: Date.now() };
        socket.destroy();
      });
      try {
        // 3.5 timeouts of frames: each write ends one frame and begins the next.
        const frame = framing.frame(Buffer.alloc(40, 7));
        const half = frame.length / 2;
        const write = (bytes: Buffer): void => {
          client.write(bytes);
          written += bytes.length;
        };
        write(Buffer.concat([framing.preface, frame.subarray(0, half)]));
        const started = Date.now();
        let sent = 0;
        let lastWrite = started;
        while (Date.now() - started < 3.5 * timeoutMs) {
          await new Promise((r) => setTimeout(r, 100));
          write(Buffer.concat([frame.subarray(half), frame.subarray(0, half)]));
          lastWrite = Date.now();
          sent++;
        }
        await waitFor("the bytes to arrive", () => received === written || cutOff !== undefined);
        assert.equal(cutOff, undefined, `cut off while frames kept finishing: ${cutOff?.why}`);
        // Now the frame in progress stalls: cut off timeoutMs after its first byte.
        await waitFor("the stalled peer to be cut off", () => cutOff !== undefined, 10 * timeoutMs);
        assert.match(cutOff!.why, /still incomplete 1000 ms after its first byte/);
        assert.ok(cutOff!.at - lastWrite >= timeoutMs - 50, "not before the frame's own timeout");
        if (framing.name === "framed transport") assert.equal(frames, sent);
      } finally {
        client.destroy();
        socket.destroy();
        server.close();
      }
    });
  }

  test("refuses a header that announces more than 256 MiB, accepts exactly 256 MiB", () => {
    assert.equal(DEFAULT_MAX_FRAME_BYTES, 256 * 1024 * 1024);
    const header = (length: number): Buffer => {
      const b = Buffer.alloc(FRAME_HEADER_BYTES);
      b.writeUInt32BE(length, 0);
      b.writeUInt8(2, 4);
      b.writeUInt32BE(1, 5);
      return b;
    };
    const reader = new FrameReader(() => assert.fail("no frame is whole"));
    assert.doesNotThrow(
      () => reader.push(header(256 * 1024 * 1024)),
      "the limit itself is allowed",
    );
    for (const length of [256 * 1024 * 1024 + 1, 0xffffffff]) {
      assert.throws(
        () => new FrameReader(() => {}).push(header(length)),
        (e: unknown) =>
          e instanceof Error &&
          e.message === `frame of ${length} bytes exceeds the limit of ${256 * 1024 * 1024}`,
      );
    }
    // A custom limit is honoured to the byte.
    assert.doesNotThrow(() => new FrameReader(() => {}, 1000).push(header(1000)));
    assert.throws(() => new FrameReader(() => {}, 1000).push(header(1001)), /1001 bytes exceeds/);
  });

  test("every byte of large frames survives any chunking, in order", () => {
    const payloads = [
      randomBytes(0),
      randomBytes(1),
      randomBytes(16 * 1024 - 1),
      randomBytes(16 * 1024),
      randomBytes(1024 * 1024),
      randomBytes(1024 * 1024 + 1),
      randomBytes(3 * 1024 * 1024 + 7),
      randomBytes(5),
    ];
    const stream = Buffer.concat(payloads.map((p, i) => encodeFrame(2, i + 1, p)));
    // Deterministic chunkings: single bytes at the edges, odd sizes, one buffer.
    for (const sizes of [[stream.length], [1, 8, 9, 10], [65_536], [1_048_577, 3], [7919]]) {
      const got: Array<{ id: number; type: number; digest: string; length: number }> = [];
      const reader = new FrameReader((type, id, payload) =>
        got.push({ id, type, digest: sha(payload), length: payload.length }),
      );
      let offset = 0;
      let k = 0;
      while (offset < stream.length) {
        const n = sizes[k++ % sizes.length] as number;
        reader.push(stream.subarray(offset, offset + n));
        offset += n;
      }
      assert.deepEqual(
        got,
        payloads.map((p, i) => ({ id: i + 1, type: 2, digest: sha(p), length: p.length })),
        `chunks of ${sizes.join(",")}`,
      );
    }
  });
});

/** A store whose Get returns the bytes last Put under the key, and Watch streams them back. */
const store = new Map<string, Uint8Array>();
const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: (req) =>
      create(GetResponseSchema, {
        found: store.has(req.key),
        value: store.get(req.key) ?? new Uint8Array(),
      }),
    put: (req) => {
      store.set(req.key, req.value);
      return {};
    },
    async *watch(req) {
      for (let i = 0; i < 3; i++)
        yield { key: req.key, value: store.get(req.key) ?? new Uint8Array() };
    },
    async putMany(requests) {
      let count = 0;
      for await (const r of requests) {
        store.set(r.key, r.value);
        count++;
      }
      return { count };
    },
    async *exchange(requests) {
      for await (const r of requests)
        yield create(GetResponseSchema, {
          found: true,
          value: store.get(r.key) ?? new Uint8Array(),
        });
    },
  });
};

for (const secure of [false, true]) {
  describe(`framed ${secure ? "over mutual TLS" : "over a unix socket"}: large messages arrive unchanged`, () => {
    let server: FramedServer;
    let close: () => void;
    let kv: ReturnType<typeof createClient<typeof KV>>;
    before(async () => {
      const dir = makeTestPki("cpfg-");
      const read = (f: string): string => readFileSync(join(dir, f), "utf8");
      const path = join(dir, "f.sock");
      server = await FramedServer.listen(
        routes,
        { network: "unix", path },
        secure
          ? { tls: { cert: read("server.crt"), key: read("server.key"), clientCa: read("ca.crt") } }
          : {},
      );
      const transport = createFramedTransport(
        { network: "unix", address: path },
        secure
          ? { tls: { ca: read("ca.crt"), cert: read("client.crt"), key: read("client.key") } }
          : {},
      );
      close = () => transport.close();
      kv = createClient(KV, transport.transport);
    });
    after(async () => {
      close();
      await server.close();
    });

    for (const size of [16 * 1024, 1024 * 1024 + 1, 2 * 1024 * 1024 + 3, 5 * 1024 * 1024]) {
      test(`${size} bytes up, back by unary, server stream and bidi`, async () => {
        const key = `k${size}${secure}`;
        const value = randomBytes(size);
        await kv.put({ key, value });
        assert.equal(sha(store.get(key) ?? new Uint8Array()), sha(value), "request bytes");
        const got = await kv.get({ key });
        assert.equal(got.value.length, size);
        assert.equal(sha(got.value), sha(value), "unary response bytes");
        for await (const e of kv.watch({ key })) assert.equal(sha(e.value), sha(value), "stream");
        const res = await kv.putMany(
          (async function* () {
            yield { key: `${key}a`, value };
            yield { key: `${key}b`, value: value.subarray(1) };
          })(),
        );
        assert.equal(res.count, 2);
        assert.equal(sha(store.get(`${key}b`) ?? new Uint8Array()), sha(value.subarray(1)));
        const echoed: string[] = [];
        for await (const r of kv.exchange(
          (async function* () {
            yield { key: `${key}a` };
            yield { key: `${key}b` };
          })(),
        ))
          echoed.push(sha(r.value));
        assert.deepEqual(echoed, [sha(value), sha(value.subarray(1))]);
      });
    }
  });
}

const fixtureMain = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));

describe("launched with CONNECT_PLUGIN_TRANSPORTS=framed", () => {
  test("the framed wire answers only callers with the launch token (health excepted)", async () => {
    const child = spawn(process.execPath, [fixtureMain, "kv"], {
      env: {
        ...process.env,
        KV_PLUGIN: "hello",
        PLUGIN_PROTOCOL_VERSIONS: "1",
        PLUGIN_UNIX_SOCKET_DIR: tempDir("cpfg-sock-"),
        CONNECT_PLUGIN_TRANSPORTS: "framed",
        CONNECT_PLUGIN_LAUNCH_TOKEN: "stdin",
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stdin.write("s3cret\n");
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      await waitFor("the handshake line", () => out.includes("\n"), 30_000);
      const line = parseHandshakeLine(out.slice(0, out.indexOf("\n")));
      assert.equal(line.protocol, "framed");
      const transports: Array<{ close(): void }> = [];
      const client = <S extends typeof KV | typeof Health>(service: S, token?: string) => {
        const t = createFramedTransport(line, {
          interceptors:
            token === undefined
              ? []
              : [
                  (next) => (req) => (
                    req.header.set("authorization", `Bearer ${token}`),
                    next(req)
                  ),
                ],
        });
        transports.push(t);
        return createClient(service, t.transport);
      };
      try {
        for (const token of [undefined, "wrong", "s3cret-but-longer", "s3cre"]) {
          await assert.rejects(client(KV, token).get({ key: "a" }), (e: unknown) => {
            const ce = ConnectError.from(e);
            assert.equal(ce.code, Code.Unauthenticated, `token ${token}: ${ce.message}`);
            assert.equal(
              ce.rawMessage,
              "this plugin only answers the host that launched it (missing or wrong launch token)",
            );
            return true;
          });
        }
        assert.equal((await client(KV, "s3cret").get({ key: "a" })).found, false);
        // The launch token as the host sends it (callHeaders): it replaces an
        // authorization header an interceptor set, whichever is right.
        const viaOption = (token: string, forged: string) => {
          const t = createFramedTransport(line, {
            callHeaders: [["authorization", `Bearer ${token}`]],
            interceptors: [
              (next) => (req) => (req.header.set("authorization", `Bearer ${forged}`), next(req)),
            ],
          });
          transports.push(t);
          return createClient(KV, t.transport);
        };
        assert.equal((await viaOption("s3cret", "wrong").get({ key: "a" })).found, false);
        await assert.rejects(viaOption("wrong", "s3cret").get({ key: "a" }), (e: unknown) => {
          assert.equal(ConnectError.from(e).code, Code.Unauthenticated);
          return true;
        });
        const health = await client(Health).check({ service: "plugin" });
        assert.equal(health.status, HealthCheckResponse_ServingStatus.SERVING);
      } finally {
        for (const t of transports) t.close();
      }
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
  });
});

describe("the host's transports option", () => {
  const kvMain = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));
  for (const [transports, expected] of [
    [undefined, "connect-plugin-framed"],
    [["framed", "connect"], "connect-plugin-framed"],
    [["connect"], "connect"],
    [["connect", "framed"], "connect"],
  ] as const) {
    test(`${transports === undefined ? "default" : transports.join(",")}: calls arrive by ${expected}`, async () => {
      const client = kvClient(
        subprocess(process.execPath, [kvMain, "kv"], {
          ...(transports !== undefined && { transports: [...transports] }),
        }),
      );
      await client.start();
      try {
        const kv = client.dispense("kv");
        assert.equal(decode((await kv.get({ key: "protocol" })).value), expected);
      } finally {
        await client.close();
      }
    });
  }
});
