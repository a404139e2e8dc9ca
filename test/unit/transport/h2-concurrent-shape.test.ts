/**
 * The Connect unary responses the stream path sends while other lean calls
 * are open on the same HTTP/2 session: as alone, the body's DATA frame ends
 * the stream (unary-wire.ts, sendConnect), where node's compatibility
 * response ends connect-es' responses with an empty DATA frame. Apart from
 * that ending they must match connect-es' frames exactly (type, flags, DATA
 * payloads), with the same status, headers and body, for successes,
 * errors, compressed and empty bodies, bodies beyond the client's
 * flow-control window, and refused headers; and many calls at once on one
 * session all settle, also while clients reset, stall and drop the
 * connection, with no stream error or warning escaping.
 */
import { tapSocket } from "../../../bench/tap-socket.js";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import { after, before, test } from "node:test";
import {
  commandRoutes,
  rawRequest,
  request,
  type HandlerSeen,
  type RawExchange,
} from "./command-routes.js";
import { closeWhenIdle } from "../../../src/transport/h2-idle.js";
import { claimStreams } from "../../../src/transport/h2-streams.js";
import { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";

const PATH = "/bench.v1.BenchService/Echo";
const READ_MAX = 1024;
const WRITE_MAX = 200_000;

interface Server {
  port: number;
  seen: HandlerSeen;
  server: PluginHttpServer;
}

async function start(lean: boolean): Promise<Server> {
  const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const adapter = createNodeAdapter({
    routes: commandRoutes(seen, WRITE_MAX),
    readMaxBytes: READ_MAX,
    writeMaxBytes: WRITE_MAX,
    lean,
  });
  const server = await PluginHttpServer.listen(
    adapter,
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { acceptHttp1: false, ...(lean && { streams: adapter.claimStream }) },
  );
  const bound = server.bound;
  assert.equal(bound.network, "tcp");
  return { port: bound.port, seen, server };
}

let stream: Server;
let reference: Server;
before(async () => {
  [stream, reference] = await Promise.all([start(true), start(false)]);
});
after(async () => {
  await Promise.all([stream.server.close(), reference.server.close()]);
});

/** A connection to `port` that records what the server sends. */
function tappedConnection(port: number, received: Buffer[]): Duplex {
  return tapSocket(net.connect(port, "127.0.0.1"), (chunk) => received.push(chunk));
}

/** The server's frames on stream `id`: type/flags, and the payload of DATA and RST_STREAM. */
function framesOf(bytes: Buffer, id: number): string[] {
  const frames: string[] = [];
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(at, 3);
    const type = bytes[at + 3] as number;
    const flags = bytes[at + 4] as number;
    const payload = bytes.subarray(at + 9, at + 9 + length);
    if ((bytes.readUInt32BE(at + 5) & 0x7fffffff) === id) {
      frames.push(
        type === 0 || type === 3
          ? `${type}/${flags}:${payload.toString("hex")}`
          : `${type}/${flags}`,
      );
    }
    at += 9 + length;
  }
  return frames;
}

/**
 * `frames` with the DATA frames as one: their payloads joined (flow control
 * and node's writes cut them anywhere), flagged END_STREAM if the last one
 * was. So the stream path's ending (END_STREAM on the body's frame) and the
 * compatibility response's (an empty DATA frame after it) compare equal.
 */
function dataJoined(frames: string[]): string[] {
  const out: string[] = [];
  let data: number | undefined;
  for (const f of frames) {
    if (!f.startsWith("0/0:") && !f.startsWith("0/1:")) out.push(f);
    else if (data === undefined) data = out.push(f) - 1;
    else out[data] = `${f.slice(0, 4)}${(out[data] as string).slice(4)}${f.slice(4)}`;
  }
  return out;
}

type Result = RawExchange;

interface Session {
  session: http2.ClientHttp2Session;
  received: Buffer[];
  call(
    command: string,
    extra?: http2.OutgoingHttpHeaders,
  ): { req: http2.ClientHttp2Stream; done: Promise<Result> };
}

function connect(port: number, settings: http2.Settings = {}): Session {
  const received: Buffer[] = [];
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => tappedConnection(port, received),
    settings,
  });
  session.on("error", () => {});
  const call: Session["call"] = (command, extra = {}) =>
    rawRequest(session, PATH, ...request("connect", command, extra));
  return { session, received, call };
}

/**
 * `command` as the second call on a session whose first call hangs (stream
 * 1), the probe being stream 3: what came back and stream 3's frames.
 */
async function besideHeld(
  server: Server,
  command: string,
  extra: http2.OutgoingHttpHeaders = {},
  settings: http2.Settings = {},
): Promise<{ result: Result; frames: string[] }> {
  const s = connect(server.port, settings);
  try {
    const started = new Promise<void>((resolve) => (server.seen.started = resolve));
    const held = s.call("hang");
    await started;
    const result = await s.call(command, extra).done;
    await new Promise((r) => setTimeout(r, 20));
    held.req.close(http2.constants.NGHTTP2_CANCEL);
    await held.done;
    return { result, frames: framesOf(Buffer.concat(s.received), 3) };
  } finally {
    server.seen.started = undefined;
    s.session.close();
  }
}

const CASES: Array<[string, string, http2.OutgoingHttpHeaders, http2.Settings]> = [
  ["ok, with headers and trailer- headers", "ok", {}, {}],
  ["an empty message", "", {}, {}],
  ["an error with metadata and details", "fail", {}, {}],
  ["a plain exception", "throw", {}, {}],
  ["a gzip response", "big", { "accept-encoding": "gzip" }, {}],
  ["a response over writeMaxBytes", "too-big", {}, {}],
  ["a connection header dropped", "connection-header", {}, {}],
  ["a header node:http2 refuses", "bad-header", {}, {}],
  ["a body beyond the client's window", "x".repeat(900), {}, { initialWindowSize: 100 }],
  ["an error beyond the client's window", "fail", {}, { initialWindowSize: 16 }],
];

for (const [name, command, extra, settings] of CASES) {
  test(`connect beside another lean call: ${name}, in connect-es' frames`, async () => {
    const lean = stream.seen.lean;
    const a = await besideHeld(stream, command, extra, settings);
    assert.equal(stream.seen.lean - lean, 2, "both calls ran on the lean path");
    const b = await besideHeld(reference, command, extra, settings);
    assert.deepEqual(a.result, b.result);
    assert.deepEqual(dataJoined(a.frames), dataJoined(b.frames));
    if (command !== "bad-header") {
      const [last, before] = [a.frames.at(-1), a.frames.at(-2)];
      assert.ok(last?.startsWith("0/1:"), "a DATA frame ends the stream");
      assert.ok(
        last !== "0/1:" || before?.startsWith("0/0:") !== true,
        "no empty DATA frame after the body's",
      );
    }
  });
}

/** A call alone on a session that already served `before`: the lone shape, HEADERS then DATA with END_STREAM. */
async function aloneAfter(
  before: (s: Session) => Promise<void>,
  settings: http2.Settings = {},
): Promise<void> {
  const s = connect(stream.port, settings);
  try {
    await before(s);
    // Every stream of `before` is closed on the server once it has answered
    // a PING sent after them (frames are read in order; 'close' follows a tick later).
    await new Promise<void>((resolve, reject) =>
      s.session.ping((error) => (error === null ? resolve() : reject(error))),
    );
    await new Promise((r) => setTimeout(r, 10));
    const received = s.received.length;
    const lean = stream.seen.lean;
    const { done } = s.call("ok");
    const r = await done;
    assert.equal(r.status, 200);
    assert.equal(stream.seen.lean - lean, 1, "served on the lean path");
    await new Promise((r) => setTimeout(r, 20));
    const bytes = Buffer.concat(s.received.slice(received));
    const ids = new Set<number>();
    for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) {
      const id = bytes.readUInt32BE(at + 5) & 0x7fffffff;
      if (id !== 0) ids.add(id);
    }
    const id = Math.max(...ids);
    assert.deepEqual(
      framesOf(bytes, id).map((f) => f.slice(0, 3)),
      ["1/4", "0/1"],
      "alone again: the body's DATA frame ends the stream",
    );
  } finally {
    stream.seen.started = undefined;
    s.session.close();
  }
}

test("1,000 concurrent calls on one session all settle, and a call alone afterwards has the same frames", async () => {
  await aloneAfter(async (s) => {
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => s.call(i % 3 === 0 ? "fail" : "ok").done),
    );
    for (const [i, r] of results.entries()) assert.equal(r.status, i % 3 === 0 ? 400 : 200);
  });
});

test("128 calls at once, answers ending on their body's frame while clients reset, stall and drop the connection: no error or warning escapes, every stream leaves closeWhenIdle's set", async () => {
  // The body's frame closes the stream before its write completes (node's
  // unseen ERR_STREAM_DESTROYED); with calls in flight, writes are also cut
  // by resets, flow control and a dropped socket. A stream error no listener
  // takes fails this test (node:test reports it); a warning is collected.
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on("warning", onWarning);
  const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const adapter = createNodeAdapter({
    routes: commandRoutes(seen, WRITE_MAX),
    readMaxBytes: READ_MAX,
    writeMaxBytes: WRITE_MAX,
  });
  const server = http2.createServer(adapter);
  assert.ok(claimStreams(server, adapter.claimStream));
  const sets: ReadonlySet<http2.ServerHttp2Stream>[] = [];
  server.on("session", (s) => sets.push(closeWhenIdle(s, 60_000)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const round = async (how: "answered" | "reset" | "stalled" | "dropped"): Promise<void> => {
    let socket: net.Socket | undefined;
    const session = http2.connect(`http://127.0.0.1:${port}`, {
      settings: how === "stalled" ? { initialWindowSize: 100 } : {},
      createConnection: () => (socket = net.connect(port, "127.0.0.1")),
    });
    session.on("error", () => {});
    // The first five answer with a status asserted below; the rest end
    // otherwise: over writeMaxBytes, a refused header (a reset), a body
    // over readMaxBytes (handed to connect-es), a deadline.
    const commands = ["ok", "big", "fail", "x".repeat(900), "cookies"];
    const others: Array<[string, http2.OutgoingHttpHeaders]> = [
      ["too-big", {}],
      ["bad-header", {}],
      ["x".repeat(READ_MAX + 10), {}],
      ["hang", { "connect-timeout-ms": "20" }],
    ];
    const all = [...commands.map((c): [string, http2.OutgoingHttpHeaders] => [c, {}]), ...others];
    const calls = Array.from({ length: 128 }, (_, i) => {
      const [command, extra] = all[i % all.length] as [string, http2.OutgoingHttpHeaders];
      const gzip = i % 7 === 0 ? { "accept-encoding": "gzip" } : {};
      return rawRequest(session, PATH, ...request("connect", command, { ...extra, ...gzip }));
    });
    if (how === "reset") {
      await new Promise((r) => setTimeout(r, 1));
      for (const [i, c] of calls.entries())
        if (i % 2 === 1) c.req.close(http2.constants.NGHTTP2_CANCEL);
    } else if (how === "stalled") {
      await new Promise((r) => setTimeout(r, 30));
      for (const [i, c] of calls.entries())
        if (i % 3 === 0) c.req.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise((r) => setTimeout(r, 10));
      session.destroy();
    } else if (how === "dropped") {
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      socket?.destroy();
    }
    const results = await Promise.all(calls.map((c) => c.done));
    session.close();
    if (how !== "answered") return;
    for (const [i, r] of results.entries()) {
      const at = i % all.length;
      if (at >= commands.length) continue;
      assert.equal(r.status, at === 2 ? 400 : 200);
      assert.equal(r.error, undefined);
    }
    assert.equal(results[0]?.headers["trailer-x-trailer"], "t", "trailer- headers kept");
    assert.equal(results[2]?.headers["trailer-x-trailer"], "kept", "an error's too");
  };
  try {
    for (let n = 0; n < 4; n++) {
      for (const how of ["answered", "reset", "stalled", "dropped"] as const) await round(how);
    }
    // The server sees the last closes a turn or more after the client (bounded wait).
    for (let i = 0; i < 100 && sets.some((s) => s.size > 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(
      sets.map((s) => s.size),
      sets.map(() => 0),
    );
    assert.ok(seen.lean > 0, "served on the lean path");
    await round("answered");
    assert.deepEqual(warnings, []);
  } finally {
    process.off("warning", onWarning);
    server.close();
  }
});
