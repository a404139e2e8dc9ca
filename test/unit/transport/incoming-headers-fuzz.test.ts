/**
 * IncomingHeaders (the lean HTTP/2 path's request headers) against the
 * eager copy connect-es' path makes, over real sockets: random requests
 * (repeated headers, set-cookie, cookie, single-value headers, empty and
 * latin1 values, mixed case in the names asked for) go to a server with
 * the lean path and to one without, and a handler runs the same random
 * sequence of reads, copies and changes on its request headers on both.
 * Every answer must be the same, and the lean server's handler must have
 * run on the lean path.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { createContextKey, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { Bench } from "../../../bench/service.js";
import { seededRandom } from "../../../chaos/suite.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";

const PATH = "/bench.v1.BenchService/Echo";

const NAMES = [
  "x-a",
  "x-b",
  "set-cookie",
  "cookie",
  "user-agent",
  "authorization",
  "x-empty",
  "accept-encoding",
  // Names of Object.prototype's members: node's header object has no prototype.
  "constructor",
  "__proto__",
];

/** Probe names: the pool, their upper-case forms, names never sent, and names Headers refuses. */
const PROBES = [
  ...NAMES,
  ...NAMES.map((n) => n.toUpperCase()),
  "X-Missing",
  "content-type",
  "te",
  "host",
  ":path",
  ":method",
  "bad name",
  "",
];

type Op =
  | { op: "get" | "has"; name: string }
  | { op: "entries" | "keys" | "values" | "forEach" | "spread" | "json" | "clone" | "getSetCookie" }
  | { op: "copy" | "inspectish" }
  | { op: "set" | "append"; name: string; value: string }
  | { op: "delete"; name: string };

function attempt(f: () => unknown): unknown {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

/** Runs `ops` on `h`, noting each answer. */
function run(h: Headers, ops: Op[], interceptorSaw: unknown): unknown[] {
  const out: unknown[] = [interceptorSaw];
  for (const o of ops) {
    switch (o.op) {
      case "get":
        out.push(attempt(() => h.get(o.name)));
        break;
      case "has":
        out.push(attempt(() => h.has(o.name)));
        break;
      case "entries":
        out.push(attempt(() => [...h.entries()]));
        break;
      case "keys":
        out.push(attempt(() => [...h.keys()]));
        break;
      case "values":
        out.push(attempt(() => [...h.values()]));
        break;
      case "forEach":
        out.push(
          attempt(() => {
            const seen: string[] = [];
            h.forEach((v, k) => seen.push(`${k}=${v}`));
            return seen;
          }),
        );
        break;
      case "spread":
        out.push(attempt(() => [{ ...h }, Object.keys(h)]));
        break;
      case "json":
        out.push(attempt(() => JSON.stringify(h)));
        break;
      case "clone":
        out.push(attempt(() => JSON.stringify(structuredClone(h))));
        break;
      case "getSetCookie":
        out.push(attempt(() => h.getSetCookie()));
        break;
      case "copy":
        out.push(attempt(() => [...new Headers(h)]));
        break;
      case "inspectish":
        out.push(attempt(() => [h instanceof Headers, Object.prototype.toString.call(h)]));
        break;
      case "set":
        out.push(attempt(() => h.set(o.name, o.value)));
        break;
      case "append":
        out.push(attempt(() => h.append(o.name, o.value)));
        break;
      case "delete":
        out.push(attempt(() => h.delete(o.name)));
        break;
    }
  }
  return out;
}

interface Seen {
  lean: number;
  reference: number;
}

function routes(seen: Seen): (router: ConnectRouter) => void {
  return (router) =>
    router.service(Bench, {
      echo(req, ctx) {
        if (CALL_ABORT in ctx) seen.lean++;
        else seen.reference++;
        const { ops } = JSON.parse(Buffer.from(req.value).toString()) as { ops: Op[] };
        const saw = ctx.values.get(interceptorKey);
        const result = run(ctx.requestHeader, ops, saw);
        return { value: Buffer.from(JSON.stringify(result)) };
      },
      async *stream() {},
    });
}

const interceptorKey = createContextKey<unknown>(undefined);

/** An interceptor that reads one header, as auth or host-session interceptors do. */
const reading: Interceptor = (next) => (req) => {
  req.contextValues.set(interceptorKey, [
    attempt(() => req.header.get("Authorization")),
    attempt(() => req.header.has("x-a")),
  ]);
  return next(req);
};

interface Server {
  url: string;
  seen: Seen;
  server: http2.Http2Server;
}

async function start(lean: boolean): Promise<Server> {
  const seen: Seen = { lean: 0, reference: 0 };
  const server = http2.createServer(
    createNodeAdapter({ routes: routes(seen), interceptors: [reading], lean }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

let withLean: Server;
let without: Server;
let sessions: http2.ClientHttp2Session[] = [];
before(async () => {
  [withLean, without] = await Promise.all([start(true), start(false)]);
  sessions = [http2.connect(withLean.url), http2.connect(without.url)];
});
after(async () => {
  for (const s of sessions) s.close();
  for (const s of [withLean, without]) {
    s.server.close();
    await new Promise<void>((resolve) => s.server.once("close", resolve));
  }
});

async function call(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": PATH, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    req.end(body);
  });
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

function value(r: () => number): string {
  const n = Math.floor(r() * 6);
  let s = "";
  for (let i = 0; i < n; i++) {
    const k = r();
    // Printable ASCII, a comma, a semicolon, an inner space or tab, latin1.
    if (k < 0.6) s += String.fromCharCode(0x21 + Math.floor(r() * 94));
    else if (k < 0.7) s += ",";
    else if (k < 0.75) s += ";";
    else if (k < 0.85 && i > 0 && i < n - 1) s += r() < 0.5 ? " " : "\t";
    else s += String.fromCharCode(0xa0 + Math.floor(r() * 0x5f));
  }
  return s;
}

function randomHeaders(r: () => number): http2.OutgoingHttpHeaders {
  // No prototype, so that a "__proto__" header is a header.
  const out = Object.create(null) as http2.OutgoingHttpHeaders;
  const count = Math.floor(r() * 6);
  for (let i = 0; i < count; i++) {
    const name = pick(r, NAMES);
    // node's client sends a single-value header (user-agent, authorization) once only.
    const single = name === "user-agent" || name === "authorization";
    const values = Array.from({ length: single ? 1 : 1 + Math.floor(r() * 3) }, () =>
      name === "x-empty" ? "" : value(r),
    );
    out[name] = values.length === 1 ? values[0] : values;
  }
  return out;
}

function randomOps(r: () => number): Op[] {
  const ops: Op[] = [];
  const count = 1 + Math.floor(r() * 12);
  for (let i = 0; i < count; i++) {
    const k = r();
    if (k < 0.55) ops.push({ op: r() < 0.5 ? "get" : "has", name: pick(r, PROBES) });
    else if (k < 0.75)
      ops.push({
        op: pick(r, [
          "entries",
          "keys",
          "values",
          "forEach",
          "spread",
          "json",
          "clone",
          "getSetCookie",
          "copy",
          "inspectish",
        ] as const),
      });
    else if (k < 0.9)
      ops.push({ op: r() < 0.5 ? "set" : "append", name: pick(r, PROBES), value: value(r) });
    else ops.push({ op: "delete", name: pick(r, PROBES) });
  }
  // End with a full read, so that every change shows.
  ops.push({ op: "entries" });
  return ops;
}

test("IncomingHeaders answers every read, copy and change as the eager copy (300 random requests, both protocols)", async () => {
  const r = seededRandom(0x5eed);
  for (let i = 0; i < 300; i++) {
    const protocol = i % 2 === 0 ? "connect" : "grpc";
    const extra = randomHeaders(r);
    const ops = randomOps(r);
    const payload = toBinary(
      BytesValueSchema,
      create(BytesValueSchema, { value: Buffer.from(JSON.stringify({ ops })) }),
    );
    let headers: http2.OutgoingHttpHeaders;
    let body: Uint8Array;
    if (protocol === "connect") {
      headers = { ...extra, "content-type": "application/proto", "connect-protocol-version": "1" };
      body = payload;
    } else {
      headers = { ...extra, "content-type": "application/grpc", te: "trailers" };
      const b = Buffer.alloc(5 + payload.length);
      b.writeUInt32BE(payload.length, 1);
      b.set(payload, 5);
      body = b;
    }
    const leanBefore = withLean.seen.lean;
    const [a, b] = await Promise.all([
      call(sessions[0] as http2.ClientHttp2Session, headers, body),
      call(sessions[1] as http2.ClientHttp2Session, headers, body),
    ]);
    const context = JSON.stringify({ i, headers, ops });
    assert.equal(a.status, 200, context);
    assert.equal(withLean.seen.lean, leanBefore + 1, `ran on the lean path: ${context}`);
    const decode = (x: Buffer): string => {
      const m = protocol === "grpc" ? x.subarray(5) : x;
      return Buffer.from(fromBinary(BytesValueSchema, m).value).toString();
    };
    assert.deepEqual(JSON.parse(decode(a.body)), JSON.parse(decode(b.body)), context);
  }
});
