/**
 * The lean HTTP/2 unary path keeps one set of stream listeners for every
 * call, and CallGuard gives each call a lazy CallAbort. Here many calls
 * share one real session with answers that interleave (success, error,
 * reset, deadline, the caller's cancel, all at random delays): each call
 * must get its own outcome and metadata, exactly once, and leave no
 * listener behind on the caller's signal. CallGuard.close() with calls in
 * flight ends every one once, whatever interceptors outside it did with the
 * request's signal.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { CallGuard } from "../../../src/host/call-guard.js";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { Bench } from "../../../bench/service.js";
import { waitFor } from "../../helpers.js";

/**
 * A hand-made Connect/gRPC unary server: `x-mode` says what it does after
 * `x-delay` ms; every answer carries the caller's `x-id` in its headers and
 * trailers (or error metadata), so a call can tell its answer from another's.
 */
interface Server {
  readonly url: string;
  /** Every session the server has seen, and whether it has closed. */
  readonly sessions: { closed: boolean }[];
  /** The x-id of every request the server has seen. */
  readonly opened: Set<string>;
  /** Reset code of each stream by x-id once closed (0: clean). */
  readonly closed: Map<string, number>;
  close(): void;
}

function envelope(data: Buffer): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out.writeUInt32BE(data.byteLength, 1);
  data.copy(out, 5);
  return out;
}

async function startServer(): Promise<Server> {
  const server = http2.createServer();
  const opened = new Set<string>();
  const closed = new Map<string, number>();
  const sessions = new Set<http2.Http2Session>();
  const seen: { closed: boolean }[] = [];
  server.on("session", (s) => {
    const entry = { closed: false };
    seen.push(entry);
    sessions.add(s);
    s.once("close", () => {
      entry.closed = true;
      sessions.delete(s);
    });
  });
  server.on("stream", (stream, h) => {
    const id = String(h["x-id"]);
    const grpc = String(h["content-type"]).startsWith("application/grpc");
    opened.add(id);
    stream.on("error", () => {});
    stream.once("close", () => closed.set(id, stream.rstCode));
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.once("end", () => {
      const body = Buffer.concat(chunks);
      // The request message (a BytesValue) echoed back.
      const message = grpc ? body.subarray(5) : body;
      const answer = (): void => {
        if (stream.destroyed) return;
        switch (h["x-mode"]) {
          case "goaway":
          case "ok":
            if (grpc) {
              stream.respond(
                {
                  ":status": 200,
                  "content-type": "application/grpc+proto",
                  "x-id": id,
                  "set-cookie": [`a=${id}`, `b=${id}`],
                  "x-id-bin": Buffer.from(id).toString("base64"),
                },
                { waitForTrailers: true },
              );
              stream.once("wantTrailers", () =>
                stream.sendTrailers({ "grpc-status": "0", "x-id": id, "x-t": [id, "2"] }),
              );
              stream.end(envelope(message));
            } else {
              stream.respond({
                ":status": 200,
                "content-type": "application/proto",
                "x-id": id,
                "set-cookie": [`a=${id}`, `b=${id}`],
                "trailer-x-id": id,
              });
              stream.end(message);
            }
            return;
          case "error":
            if (grpc) {
              stream.respond(
                {
                  ":status": 200,
                  "content-type": "application/grpc+proto",
                  "grpc-status": String(Code.NotFound),
                  "grpc-message": `missing ${id}`,
                  "x-id": id,
                },
                { endStream: true },
              );
            } else {
              stream.respond({ ":status": 404, "content-type": "application/json", "x-id": id });
              stream.end(JSON.stringify({ code: "not_found", message: `missing ${id}` }));
            }
            return;
          case "reset":
            stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
            return;
          case "cut":
            // Headers, half a body, then a reset.
            stream.respond({
              ":status": 200,
              "content-type": grpc ? "application/grpc+proto" : "application/proto",
              "content-length": "100",
            });
            stream.write(Buffer.alloc(3), () =>
              stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
            );
            return;
          default: // "hang": never answers
        }
      };
      // A graceful GOAWAY that lets this stream finish, then the answer.
      if (h["x-mode"] === "goaway")
        stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
      const delay = Number(h["x-delay"] ?? 0);
      if (delay > 0) setTimeout(answer, delay).unref();
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions: seen,
    opened,
    closed,
    close: () => {
      server.close();
      for (const s of sessions) s.destroy();
    },
  };
}

/** A seeded PRNG, so that a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

/** "drained" when the guard counts no call in flight (drain() resolves at once), else "pending". */
async function drainedNow(guard: CallGuard): Promise<string> {
  const drained = guard.drain(5_000).then(() => "drained");
  return Promise.race([drained, new Promise<string>((r) => setTimeout(r, 100, "pending"))]);
}

const MODES = ["ok", "ok", "ok", "error", "reset", "cut", "deadline", "cancel"] as const;

describe("64 interleaved unary calls on one session", () => {
  let server: Server;
  before(async () => (server = await startServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    for (const guarded of [false, true]) {
      test(`${protocol}${guarded ? ", behind CallGuard" : ""}: each call gets its own outcome, once, and leaves no listener on the caller's signal`, async () => {
        const guard = new CallGuard("p", () => t.isBroken());
        const t = createH2Transport(
          server.url,
          {},
          { protocol, interceptors: guarded ? [guard.interceptor] : [] },
        );
        const rnd = random(protocol === "grpc" ? 7 : 11);
        const shared = new AbortController();
        try {
          const client = createClient(Bench, t.transport);
          for (let round = 0; round < 3; round++) {
            const calls = Array.from({ length: 64 }, async (_, i) => {
              const id = `${round}-${i}`;
              const mode = MODES[Math.floor(rnd() * MODES.length)] ?? "ok";
              const delay = Math.floor(rnd() * 30);
              const own = new AbortController();
              const signal = mode === "cancel" ? own.signal : shared.signal;
              const header = {
                "x-id": id,
                "x-mode": mode === "deadline" || mode === "cancel" ? "hang" : mode,
                "x-delay": String(delay),
              };
              if (mode === "cancel") setTimeout(() => own.abort(), delay + 5);
              let settled = 0;
              let res: unknown;
              try {
                const headers: Headers[] = [];
                const trailers: Headers[] = [];
                const out = await client.echo(
                  { value: new TextEncoder().encode(id) },
                  {
                    headers: header,
                    signal,
                    timeoutMs: mode === "deadline" ? delay + 5 : undefined,
                    onHeader: (h) => headers.push(h),
                    onTrailer: (tr) => trailers.push(tr),
                  },
                );
                settled++;
                res = { mode, id, value: new TextDecoder().decode(out.value), headers, trailers };
              } catch (e) {
                settled++;
                res = { mode, id, error: e };
              }
              assert.equal(settled, 1);
              return res as {
                mode: string;
                id: string;
                value?: string;
                headers?: Headers[];
                trailers?: Headers[];
                error?: unknown;
              };
            });
            for (const r of await Promise.all(calls)) {
              const { mode, id } = r;
              if (mode === "ok") {
                assert.equal(r.error, undefined, `${id}: ${String(r.error)}`);
                assert.equal(r.value, id);
                const [h] = r.headers ?? [];
                const [tr] = r.trailers ?? [];
                assert.ok(h !== undefined && tr !== undefined);
                assert.equal(h.get("x-id"), id);
                assert.deepEqual(h.getSetCookie(), [`a=${id}`, `b=${id}`]);
                assert.equal(tr.get("x-id"), id);
                if (protocol === "grpc") {
                  assert.equal(Buffer.from(h.get("x-id-bin") ?? "", "base64").toString(), id);
                  assert.equal(tr.get("x-t"), `${id}, 2`);
                  assert.equal(tr.get("grpc-status"), "0");
                } else assert.equal(h.has("trailer-x-id"), false);
                continue;
              }
              assert.ok(r.error instanceof ConnectError, `${id} ${mode}: ${String(r.error)}`);
              const e = r.error;
              switch (mode) {
                case "error":
                  assert.equal(e.code, Code.NotFound);
                  assert.equal(e.rawMessage, `missing ${id}`);
                  assert.equal(e.metadata.get("x-id"), id);
                  break;
                case "deadline":
                  assert.equal(e.code, Code.DeadlineExceeded, `${id}: ${e.message}`);
                  break;
                case "cancel":
                  assert.equal(e.code, Code.Canceled, `${id}: ${e.message}`);
                  break;
                default: // reset, cut: a transport error, never another call's metadata
                  assert.equal(e.metadata.get("x-id"), null, `${id} ${mode}: ${e.message}`);
              }
            }
          }
          assert.equal(getEventListeners(shared.signal, "abort").length, 0, "listeners left");
          assert.equal(await drainedNow(guard), "drained", "no call left counted in flight");
        } finally {
          t.close();
        }
      });
    }
  }
});

describe("CallGuard.close() with HTTP/2 unary calls in flight", () => {
  let server: Server;
  before(async () => (server = await startServer()));
  after(() => server.close());

  /** Interceptors outside the guard that do what users do with the request. */
  const readsSignal: Interceptor = (next) => (req) => {
    void req.signal.aborted;
    return next(req);
  };
  const spreads: Interceptor = (next) => (req) => next({ ...req });
  const ownSignal: Interceptor = (next) => (req) => {
    const c = new AbortController();
    req.signal.addEventListener("abort", () => c.abort(req.signal.reason));
    return next({ ...req, signal: c.signal });
  };

  for (const protocol of ["connect", "grpc"] as const) {
    for (const [label, outer] of [
      ["no interceptor", []],
      ["an interceptor reads req.signal", [readsSignal]],
      ["an interceptor spreads the request", [spreads]],
      ["an interceptor puts in a signal of its own", [ownSignal]],
    ] as const) {
      test(`${protocol}, ${label}: every call in flight ends once with Unavailable, its stream reset; later calls fail at once`, async () => {
        const guard = new CallGuard("p", () => t.isBroken());
        const t = createH2Transport(
          server.url,
          {},
          { protocol, interceptors: [...outer, guard.interceptor] },
        );
        try {
          const client = createClient(Bench, t.transport);
          const ok = await client.echo(
            { value: new Uint8Array([1]) },
            { headers: { "x-id": `${protocol}-${label}-ok`, "x-mode": "ok" } },
          );
          assert.deepEqual(ok.value, new Uint8Array([1]));
          const ids = Array.from({ length: 16 }, (_, i) => `${protocol}-${label}-${i}`);
          let settlements = 0;
          const calls = ids.map((id) =>
            client
              .echo({ value: new Uint8Array([2]) }, { headers: { "x-id": id, "x-mode": "hang" } })
              .then(
                () => {
                  settlements++;
                  return undefined;
                },
                (e: unknown) => {
                  settlements++;
                  return e;
                },
              ),
          );
          // Every request reached the server before close().
          await waitFor("the requests", () => ids.every((id) => server.opened.has(id)));
          guard.close();
          const errors = await Promise.all(calls);
          for (const e of errors) {
            assert.ok(e instanceof ConnectError, String(e));
            assert.equal(e.code, Code.Unavailable);
            assert.equal(e.rawMessage, "plugin p was closed");
          }
          for (const id of ids) {
            await waitFor(`${id}'s stream closed`, () => server.closed.has(id));
            assert.equal(server.closed.get(id), http2.constants.NGHTTP2_CANCEL, id);
          }
          await new Promise((r) => setTimeout(r, 20));
          assert.equal(settlements, ids.length, "each call settled once");
          await assert.rejects(
            client.echo(
              { value: new Uint8Array([3]) },
              { headers: { "x-id": "late", "x-mode": "ok" } },
            ),
            (e: unknown) => e instanceof ConnectError && e.code === Code.Unavailable,
          );
          assert.equal(await drainedNow(guard), "drained", "no call left counted in flight");
        } finally {
          t.close();
        }
      });
    }
  }
});

describe("CallGuard over HTTP/2: a caller's signal already aborted", () => {
  let server: Server;
  before(async () => (server = await startServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the call fails with Canceled, sends nothing, and is not left in flight`, async () => {
      const guard = new CallGuard("p", () => t.isBroken());
      const t = createH2Transport(server.url, {}, { protocol, interceptors: [guard.interceptor] });
      try {
        const client = createClient(Bench, t.transport);
        const c = new AbortController();
        c.abort();
        const id = `${protocol}-pre-aborted`;
        await assert.rejects(
          client.echo(
            { value: new Uint8Array([1]) },
            { signal: c.signal, headers: { "x-id": id, "x-mode": "ok" } },
          ),
          (e: unknown) => e instanceof ConnectError && e.code === Code.Canceled,
        );
        assert.equal(await drainedNow(guard), "drained");
        // A later call on the same transport still works, and the first never reached the server.
        await client.echo(
          { value: new Uint8Array([2]) },
          { headers: { "x-id": `${id}-2`, "x-mode": "ok" } },
        );
        assert.equal(server.opened.has(id), false);
      } finally {
        t.close();
      }
    });
  }
});

describe("a graceful GOAWAY with a call in flight", () => {
  let server: Server;
  before(async () => (server = await startServer()));
  after(() => server.close());

  for (const protocol of ["connect", "grpc"] as const) {
    test(`${protocol}: the call finishes on the old session, which then closes; the next call opens a new one`, async () => {
      const t = createH2Transport(server.url, {}, { protocol });
      try {
        const client = createClient(Bench, t.transport);
        const first = server.sessions.length;
        const id = `${protocol}-goaway`;
        const res = await client.echo(
          { value: new TextEncoder().encode(id) },
          { headers: { "x-id": id, "x-mode": "goaway", "x-delay": "50" } },
        );
        assert.equal(new TextDecoder().decode(res.value), id);
        await waitFor("the old session closed", () => server.sessions[first]?.closed === true);
        assert.equal(t.isBroken(), false, "a GOAWAY is not a broken connection");
        await client.echo(
          { value: new Uint8Array([1]) },
          { headers: { "x-id": `${id}-2`, "x-mode": "ok" } },
        );
        assert.equal(server.sessions.length, first + 2);
      } finally {
        t.close();
      }
    });
  }
});
