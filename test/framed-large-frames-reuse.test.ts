/**
 * FrameWriter encodes a large frame into the memory of the previous one once
 * the socket's write callback has fired (frames.ts, large()): a buffer
 * reused while the kernel, libuv or the TLS layer still reads it would send
 * another call's bytes, silently. Here many concurrent ~1 MiB calls with
 * contents of their own go both ways through the real framed transport,
 * over a unix socket, TCP and TLS, each round on a new connection whose
 * first calls are queued before it connected (and, with TLS, before its
 * handshake), and every byte is checked at the other end; and node warns
 * of no listener leak while callers wait for the socket to drain.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { KV } from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import { createFramedTransport, type FramedTarget } from "../src/transport/framed/client.js";
import { FramedServer, type FramedServerOptions } from "../src/transport/framed/server.js";
import type { ListenTarget } from "../src/transport/listen.js";
import { makeTestPki, tempDir } from "./helpers.js";

const KiB = 1024;

/** The contents of `key` ("<seed>:<bytes>"): its own pseudo-random bytes. */
function contents(key: string): Uint8Array {
  const [seedText, sizeText] = key.split(":");
  const size = Number(sizeText);
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (Number(seedText) * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new Uint8Array(words.buffer, 0, size);
}

function sameBytes(got: Uint8Array, key: string): boolean {
  return (
    Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), contents(key)) === 0
  );
}

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    // The server's frames: the contents of the key asked for.
    get: (req) => ({ found: true, value: contents(req.key) }),
    // The client's frames: checked here, byte for byte.
    put: (req) => {
      if (!sameBytes(req.value, req.key)) throw new Error(`put ${req.key}: bytes differ`);
      return {};
    },
    // Several large frames queued in one tick (one corked write).
    async *exchange(reqs) {
      for await (const req of reqs) yield { found: true, value: contents(req.key) };
    },
  });
};

const servers: FramedServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function stress(listen: ListenTarget, options: FramedServerOptions, tls?: { ca: Buffer }) {
  const server = await FramedServer.listen(routes, listen, options);
  servers.push(server);
  const bound = server.bound;
  const target: FramedTarget = {
    network: bound.network,
    address: bound.address,
  };
  let seed = 0;
  // Sizes around 1 MiB, so that a kept buffer is reused for a frame up to
  // half its size, and some up to 3 MiB.
  const key = (): string => {
    seed++;
    const size = seed % 9 === 0 ? 3 * 1024 * KiB - seed : 600 * KiB + ((seed * 7919) % (700 * KiB));
    return `${seed}:${size}`;
  };
  let calls = 0;
  // Many callers blocked on one full socket share one wait for "drain"
  // (drained.ts): node warned past ten listeners when each added its own.
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on("warning", onWarning);
  for (let round = 0; round < 3; round++) {
    const transport = createFramedTransport(target, tls === undefined ? {} : { tls });
    const kv = createClient(KV, transport.transport);
    try {
      // All callers start at once: their first frames are queued before the
      // socket connected (and before the TLS handshake).
      await Promise.all(
        Array.from({ length: 12 }, async (_, c) => {
          for (let i = 0; i < 5; i++) {
            const k = key();
            if ((c + i) % 3 === 0) {
              await kv.put({ key: k, value: contents(k) });
            } else if ((c + i) % 3 === 1) {
              const res = await kv.get({ key: k });
              assert.ok(sameBytes(res.value, k), `get ${k}: bytes differ`);
            } else {
              const keys = [key(), key(), key()];
              let n = 0;
              for await (const res of kv.exchange(
                (async function* () {
                  yield* keys.map((x) => ({ key: x }));
                })(),
              )) {
                assert.ok(
                  sameBytes(res.value, keys[n] as string),
                  `exchange ${keys[n]}: bytes differ`,
                );
                n++;
              }
              assert.equal(n, keys.length);
            }
            calls++;
          }
        }),
      );
    } finally {
      transport.close();
    }
  }
  assert.equal(calls, 3 * 12 * 5);
  await new Promise((resolve) => setImmediate(resolve));
  process.off("warning", onWarning);
  assert.deepEqual(
    warnings.map((w) => `${w.name}: ${w.message}`),
    [],
  );
}

test("large frames (~1 MiB, 12 concurrent callers, new connection a round), unix socket: every byte arrives as sent, both ways", async () => {
  await stress({ network: "unix", path: join(tempDir("cplarge-"), "f.sock") }, {});
});

test("large frames (~1 MiB, 12 concurrent callers, new connection a round), TCP: every byte arrives as sent, both ways", async () => {
  await stress({ network: "tcp", host: "127.0.0.1", port: 0 }, {});
});

test("large frames (~1 MiB, 12 concurrent callers, new connection a round), TLS (first calls queued before the handshake): every byte arrives as sent, both ways", async () => {
  const pki = makeTestPki("cplarge-tls-");
  const f = (n: string): Buffer => readFileSync(join(pki, n));
  await stress(
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { tls: { cert: f("server.crt"), key: f("server.key") } },
    { ca: f("ca.crt") },
  );
});
