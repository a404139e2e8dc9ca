/**
 * The framed server's lazy headers (lazy-pairs-headers.ts) put on the wire
 * exactly what the filled `Headers` they replaced did: the header and
 * trailer frames' payloads, byte for byte, for handlers that read then set,
 * set then delete, append to the trailer after a streamed message, fail
 * with metadata while their trailer is untouched or only read, and echo a
 * host's repeated, case-varied, padded and cookie headers. The expected
 * payloads were recorded from the build before lazy headers.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  GetRequestSchema,
  KV,
  WatchRequestSchema,
} from "../examples/kv/gen/example/kv/v1/kv_pb.js";
import {
  FrameReader,
  FrameType,
  encodeFrame,
  jsonPayload,
} from "../src/transport/framed/frames.js";
import { FramedServer } from "../src/transport/framed/server.js";
import { tempDir, waitFor } from "./helpers.js";

const metadata = (): Headers =>
  new Headers([
    ["x-m", "1"],
    ["X-M", "2"],
    ["set-cookie", "a"],
    ["set-cookie", "b"],
  ]);

/** What a unary handler does to its headers, by request key. */
function act(key: string, ctx: HandlerContext): void {
  switch (key) {
    case "read-then-set":
      ctx.requestHeader.get("x-a");
      ctx.responseHeader.get("x");
      ctx.responseHeader.set("x-b", "v");
      return;
    case "set-delete":
      ctx.responseHeader.set("x-b", "v");
      ctx.responseHeader.delete("x-b");
      ctx.responseTrailer.set("x", "1");
      ctx.responseTrailer.delete("X");
      return;
    case "echo":
      for (const [k, v] of ctx.requestHeader) {
        ctx.responseHeader.append(k, v);
        ctx.responseTrailer.append(`t-${k}`, v);
      }
      return;
    case "echo-get":
      for (const n of ["x-a", "cookie", "set-cookie", "authorization", "x-sp"]) {
        const v = ctx.requestHeader.get(n);
        if (v !== null) ctx.responseTrailer.append(n, v);
      }
      ctx.responseHeader.set("has", String(ctx.requestHeader.has("X-A")));
      return;
    case "throw-untouched":
      throw new ConnectError("boom", Code.NotFound, metadata());
    case "throw-read":
      ctx.responseTrailer.get("x");
      ctx.responseTrailer.has("y");
      throw new ConnectError("boom", Code.NotFound, metadata());
    case "throw-own":
      ctx.responseTrailer.append("own", "1");
      throw new ConnectError("boom", Code.NotFound, metadata());
  }
}

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: (req, ctx) => {
      act(req.key, ctx);
      return { value: new Uint8Array([1]) };
    },
    put: () => ({}),
    async *watch(req, ctx) {
      if (req.key === "after-message") {
        yield { key: "a" };
        ctx.responseTrailer.append("t", "1");
        ctx.responseHeader.set("late", "1"); // the header is already sent
        yield { key: "b" };
        return;
      }
      if (req.key === "after-message-throw") {
        ctx.responseHeader.set("h", "1");
        yield { key: "a" };
        ctx.responseTrailer.append("t", "1");
        throw new ConnectError("late", Code.DataLoss, metadata());
      }
      if (req.key === "throw-untouched") {
        yield { key: "a" };
        throw new ConnectError("late", Code.DataLoss, metadata());
      }
      act(req.key, ctx);
      yield { key: "a" };
    },
    putMany: async () => ({ count: 0 }),
    async *exchange() {},
  });
};

/** A host's header list: repeated and case-varied names, padding, cookies, an empty value. */
const HOST_HEADERS = [
  ["X-A", " 1 "],
  ["x-a", "2"],
  ["cookie", "c=1"],
  ["Cookie", "d=2"],
  ["set-cookie", "s1"],
  ["Set-Cookie", "s2"],
  ["authorization", "Bearer t"],
  ["x-sp", "\t"],
  ["x-e", ""],
  ["x-e", "v"],
  ["x-hi", "\u00e9\u00ff"],
  ["x-edge", "\r\nv\r\n"],
];
const ECHOED =
  '[["authorization","Bearer t"],["cookie","c=1; d=2"],["set-cookie","s1"],["set-cookie","s2"],["x-a","1, 2"],["x-e",", v"],["x-edge","v"],["x-hi","\u00e9\u00ff"],["x-sp",""]]';
const ECHOED_TRAILER =
  '{"t":[["t-authorization","Bearer t"],["t-cookie","c=1; d=2"],["t-set-cookie","s1, s2"],["t-x-a","1, 2"],["t-x-e",", v"],["t-x-edge","v"],["t-x-hi","\u00e9\u00ff"],["t-x-sp",""]]}';
const META = '["set-cookie","a"],["set-cookie","b"],["x-m","1, 2"]';

/** [method, key, host headers?, expected header payload, expected trailer payload] */
const cases: Array<[string, string, boolean, string, string]> = [
  ["Get", "none", false, "", ""],
  ["Get", "none", true, "", ""],
  ["Get", "read-then-set", true, '[["x-b","v"]]', ""],
  ["Get", "set-delete", true, "", ""],
  ["Get", "echo", true, ECHOED, ECHOED_TRAILER],
  ["Get", "echo-get", false, '[["has","false"]]', ""],
  [
    "Get",
    "echo-get",
    true,
    '[["has","true"]]',
    '{"t":[["authorization","Bearer t"],["cookie","c=1; d=2"],["set-cookie","s1, s2"],["x-a","1, 2"],["x-sp",""]]}',
  ],
  ["Get", "throw-untouched", false, "", `{"t":[${META}],"e":{"c":5,"m":"boom"}}`],
  ["Get", "throw-read", true, "", `{"t":[${META}],"e":{"c":5,"m":"boom"}}`],
  ["Get", "throw-own", true, "", `{"t":[["own","1"],${META}],"e":{"c":5,"m":"boom"}}`],
  ["Watch", "none", true, "", ""],
  ["Watch", "after-message", false, "", '{"t":[["t","1"]]}'],
  [
    "Watch",
    "after-message-throw",
    true,
    '[["h","1"]]',
    `{"t":[${META.replace('["x-m"', '["t","1"],["x-m"')}],"e":{"c":15,"m":"late"}}`,
  ],
  ["Watch", "throw-untouched", false, "", `{"t":[${META}],"e":{"c":15,"m":"late"}}`],
  ["Watch", "echo", true, ECHOED, ECHOED_TRAILER],
  ["Watch", "set-delete", true, "", ""],
];

let server: FramedServer;
let path: string;
before(async () => {
  path = join(tempDir("cplw-"), "f.sock");
  server = await FramedServer.listen(routes, { network: "unix", path }, {});
});
after(() => server.close());

test("lazy headers: the header and trailer frames are those a filled Headers gave, byte for byte", async () => {
  const socket = net.connect(path);
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  const got = new Map<number, { header?: string; trailer?: string }>();
  const reader = new FrameReader((type, id, payload) => {
    const entry = got.get(id) ?? {};
    const text = Buffer.from(payload).toString("utf8");
    if (type === FrameType.header) entry.header = text;
    if (type === FrameType.trailer) entry.trailer = text;
    got.set(id, entry);
  });
  socket.on("data", (chunk: Buffer) => reader.push(chunk));
  const frames: Buffer[] = [];
  cases.forEach(([method, key, headers], i) => {
    const id = i + 1;
    const request =
      method === "Get"
        ? toBinary(GetRequestSchema, create(GetRequestSchema, { key }))
        : toBinary(WatchRequestSchema, create(WatchRequestSchema, { key }));
    const p = `/example.kv.v1.KV/${method}`;
    frames.push(
      encodeFrame(FrameType.open, id, jsonPayload(headers ? { p, h: HOST_HEADERS } : { p })),
      encodeFrame(FrameType.message, id, request),
      encodeFrame(FrameType.end, id),
    );
  });
  socket.write(Buffer.concat(frames));
  try {
    await waitFor(
      "every call's trailer",
      () => [...got.values()].filter((e) => e.trailer !== undefined).length === cases.length,
      10_000,
    );
    cases.forEach(([method, key, headers, header, trailer], i) => {
      const label = `${method} ${key}${headers ? " (host headers)" : ""}`;
      assert.equal(got.get(i + 1)?.header, header, `${label}: header`);
      assert.equal(got.get(i + 1)?.trailer, trailer, `${label}: trailer`);
    });
  } finally {
    socket.destroy();
  }
});
