/**
 * The Bench service and the requests of the differential server tests
 * (lean-unary.test.ts, h2-streams.test.ts, h2-server-stream.test.ts,
 * request-stream.test.ts, the lean-unary-* tests), their servers, and the
 * raw HTTP/2 exchanges they make: Echo does what its request's
 * bytes say ("ok", "fail", "hang", ...), so that one request exercises one
 * case on the lean path and on connect-es' own handlers alike, and counts
 * which path ran it.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import { Bench } from "../../../bench/service.js";
import { CALL_ABORT } from "../../../src/transport/lazy-abort.js";
import { PluginHttpServer } from "../../../src/transport/http-server.js";
import {
  createNodeAdapter,
  type NodeAdapter,
  type NodeAdapterOptions,
  type NodeHandler,
} from "../../../src/transport/node-adapter.js";

/** What one server's handler saw. */
export interface HandlerSeen {
  /** Calls whose context was the lean path's (it carries CALL_ABORT). */
  lean: number;
  reference: number;
  /** The reason each aborted handler's signal gave, as code and message. */
  aborted: Array<{ code: Code; message: string }>;
  /** Set by a "slow" or "hang" call once its handler runs. */
  started?: () => void;
}

/**
 * Echo's commands: "ok" (headers, a repeated header, a trailer),
 * "cookies" (set-cookie twice in the headers and twice in the trailers:
 * values that stay apart), "big"
 * (2,000 bytes), "big-trailer" (a 2,000-byte trailer), "too-big" (writeMax + 1 bytes), "fail" (an error with
 * metadata, details, headers and trailers), "throw" (a plain Error),
 * "connection-header" (a header node's compatibility response drops),
 * "request-headers" (the request headers as the handler reads them, as JSON),
 * "url" (the scheme, path and query of the URL the handler's context names),
 * "bad-header" and "bad-header-fail" (a header node:http2 refuses to send),
 * "bad-trailer" (a trailer node:http2 refuses to send),
 * "slow" and "hang" (wait for the signal, then throw its reason); anything
 * else is echoed.
 */
export function commandRoutes(
  seen: HandlerSeen,
  writeMax: number,
): (router: ConnectRouter) => void {
  const wait = (ctx: HandlerContext): Promise<unknown> => abortReason(ctx.signal, seen.aborted);
  return (router) =>
    router.service(Bench, {
      async echo(req, ctx) {
        if (CALL_ABORT in ctx) seen.lean++;
        else seen.reference++;
        const command = Buffer.from(req.value).toString("latin1");
        switch (command) {
          case "ok":
            ctx.responseHeader.set("x-answer", "yes");
            ctx.responseHeader.append("x-many", "1");
            ctx.responseHeader.append("x-many", "2");
            ctx.responseTrailer.set("x-trailer", "t");
            return { value: new Uint8Array([1, 2, 3]) };
          case "cookies":
            ctx.responseHeader.append("set-cookie", "a=1");
            ctx.responseHeader.append("set-cookie", "b=2");
            ctx.responseTrailer.append("set-cookie", "c=3");
            ctx.responseTrailer.append("set-cookie", "d=4");
            return { value: new Uint8Array([1]) };
          case "big":
            return { value: new Uint8Array(2000).fill(7) };
          case "big-trailer":
            // Over compressMinBytes: gRPC-web compresses its trailer envelope.
            ctx.responseTrailer.set("x-big", "t".repeat(2000));
            return { value: new Uint8Array([1]) };
          case "too-big":
            return { value: new Uint8Array(writeMax + 1) };
          case "fail":
            ctx.responseHeader.set("x-before", "set");
            ctx.responseTrailer.set("x-trailer", "kept");
            throw new ConnectError(
              "it broke: 100% ünicode\nline",
              Code.FailedPrecondition,
              { "x-meta": "m" },
              [{ desc: BytesValueSchema, value: { value: new Uint8Array([9, 9]) } }],
            );
          case "throw":
            throw new Error("internal details");
          case "connection-header":
            // Dropped by node's compatibility response; the stream path drops it too.
            ctx.responseHeader.set("connection", "close");
            return req;
          case "bad-header":
          case "bad-header-fail":
            // Headers accepts it, node:http2 refuses to send it (a connection header).
            ctx.responseHeader.set("keep-alive", "timeout=5");
            if (command === "bad-header-fail") throw new ConnectError("no", Code.Aborted);
            return req;
          case "bad-trailer":
            // Headers accepts it, node:http2 refuses to send it as a trailer.
            ctx.responseTrailer.set("keep-alive", "timeout=5");
            return req;
          case "request-headers": {
            // What the handler reads of its request headers, as the client should see it again.
            const header = ctx.requestHeader;
            const read = {
              isHeaders: header instanceof Headers,
              get: header.get("X-Custom"),
              has: header.has("x-missing"),
              cookie: header.get("cookie"),
              // HTTP/1.1's Host names each test server's own port.
              entries: [...header].filter(([k]) => k !== "user-agent" && k !== "host"),
            };
            return { value: Buffer.from(JSON.stringify(read)) };
          }
          case "url": {
            // Scheme, path and query: the host names each test server's own port.
            const url = new URL(ctx.url);
            return { value: Buffer.from(url.protocol + url.pathname + url.search) };
          }
          case "header-kind":
            // Set only after the handler read what they are.
            ctx.responseHeader.set(
              "x-kind",
              `${ctx.responseHeader instanceof Headers}/${ctx.responseTrailer instanceof Headers}`,
            );
            ctx.responseTrailer.set(
              "x-trailer-kind",
              String(ctx.responseTrailer instanceof Headers),
            );
            return req;
          case "slow":
          case "hang":
            seen.started?.();
            throw await wait(ctx);
          default:
            return req;
        }
      },
      async *stream() {},
    });
}

/** `signal`'s reason once it aborts, recorded in `aborted` as code and message. */
export function abortReason(
  signal: AbortSignal,
  aborted: Array<{ code: Code; message: string }>,
): Promise<unknown> {
  return new Promise((resolve) => {
    const done = (): void => {
      const reason = ConnectError.from(signal.reason);
      aborted.push({ code: reason.code, message: reason.rawMessage });
      resolve(signal.reason);
    };
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}

/** Refuses a request with an x-reject header (PermissionDenied); marks every answer x-intercepted. */
export const rejecting: Interceptor = (next) => async (req) => {
  if (req.header.get("x-reject") !== null) {
    throw new ConnectError("rejected by the interceptor", Code.PermissionDenied);
  }
  const res = await next(req);
  res.header.set("x-intercepted", "yes");
  return res;
};

/**
 * A differential test's server on loopback TCP: `adapter` behind
 * PluginHttpServer, its streams claimed from the bare stream when `claim`,
 * and `seen.compat` counting the HTTP/2 requests that reached it through
 * node's compatibility objects instead.
 */
export async function listenCounting<S extends { compat: number }>(
  adapter: NodeAdapter,
  seen: S,
  claim: boolean,
  acceptHttp1 = false,
): Promise<{ port: number; seen: S; server: PluginHttpServer }> {
  const counted: NodeHandler = (req, res) => {
    if ("stream" in req) seen.compat++;
    adapter(req, res);
  };
  const server = await PluginHttpServer.listen(
    counted,
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { acceptHttp1, ...(claim && { streams: adapter.claimStream }) },
  );
  const bound = server.bound;
  if (bound.network !== "tcp") throw new Error("not on TCP");
  return { port: bound.port, seen, server };
}

/** Headers without `date`, which differs between any two answers. */
export function clean(h: http2.IncomingHttpHeaders): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (k !== "date") out[k] = v;
  return out;
}

/** What a raw HTTP/2 request got back: status, headers and trailers (without `date`), body in hex. */
export interface Exchange {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown> | undefined;
}

/** Sends one raw HTTP/2 POST to `path` on a fresh session and collects what comes back. */
export async function exchange(
  url: string,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<Exchange> {
  const session = http2.connect(url);
  try {
    return await new Promise<Exchange>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": path, ...headers });
      const chunks: Buffer[] = [];
      let status = 0;
      let responseHeaders: Record<string, unknown> = {};
      let trailers: Record<string, unknown> | undefined;
      req.on("response", (h) => {
        status = Number(h[":status"]);
        responseHeaders = clean(h);
      });
      req.on("trailers", (t: http2.IncomingHttpHeaders) => (trailers = clean(t)));
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () =>
        resolve({
          status,
          headers: responseHeaders,
          body: Buffer.concat(chunks).toString("hex"),
          trailers,
        }),
      );
      req.on("error", reject);
      req.end(body);
    });
  } finally {
    session.close();
  }
}

/** A plain node:http2 server on loopback serving createNodeAdapter(options), and its URL. */
export async function listenAdapter(
  options: NodeAdapterOptions,
  onSession?: (session: http2.ServerHttp2Session) => void,
): Promise<{ server: http2.Http2Server; url: string }> {
  const server = http2.createServer(createNodeAdapter(options));
  if (onSession !== undefined) server.on("session", onSession);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** What rawExchange() saw: as Exchange, and how the stream failed, if it did. */
export interface RawExchange extends Exchange {
  /** The client's error code, if the stream failed (a reset). */
  error?: string;
  /** The stream's RST_STREAM code, unless NO_ERROR. */
  rstCode?: number;
}

/**
 * Sends one POST to `path` on `session` and collects what comes back until
 * the stream closes (`done`), never rejecting (a reset is in `error` and
 * `rstCode`). A `body` array is written a chunk per 5 ms; `cancelAfterMs`
 * resets the stream (CANCEL) that long after the request was sent.
 */
export function rawRequest(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[],
  cancelAfterMs?: number,
): { req: http2.ClientHttp2Stream; done: Promise<RawExchange> } {
  const req = session.request({ ":method": "POST", ":path": path, ...headers });
  const chunks: Buffer[] = [];
  const x: RawExchange = { status: 0, headers: {}, body: "", trailers: undefined };
  req.on("response", (h) => {
    x.status = Number(h[":status"]);
    x.headers = clean(h);
  });
  req.on("trailers", (t: http2.IncomingHttpHeaders) => (x.trailers = clean(t)));
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("error", (e: NodeJS.ErrnoException) => (x.error = e.code));
  const done = new Promise<RawExchange>((resolve) =>
    req.on("close", () => {
      x.body = Buffer.concat(chunks).toString("hex");
      if (req.rstCode !== http2.constants.NGHTTP2_NO_ERROR) x.rstCode = req.rstCode;
      resolve(x);
    }),
  );
  if (Array.isArray(body)) {
    void (async () => {
      for (const chunk of body) {
        req.write(chunk);
        await new Promise((r) => setTimeout(r, 5));
      }
      req.end();
    })();
  } else req.end(body);
  if (cancelAfterMs !== undefined) {
    setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), cancelAfterMs);
  }
  return { req, done };
}

/** A request left open for the test to write; `done` is its status once the stream closes. */
export function openRequest(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
): { req: http2.ClientHttp2Stream; done: Promise<{ status: number; trailers: unknown }> } {
  const req = session.request({ ":method": "POST", ":path": path, ...headers });
  let status = 0;
  let trailers: unknown;
  req.on("response", (h) => (status = Number(h[":status"])));
  req.on("trailers", (t: http2.IncomingHttpHeaders) => (trailers = clean(t)));
  req.on("data", () => {});
  req.on("error", () => {});
  return {
    req,
    done: new Promise((resolve) => req.on("close", () => resolve({ status, trailers }))),
  };
}

/** rawRequest()'s outcome. */
export function rawExchange(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[],
  cancelAfterMs?: number,
): Promise<RawExchange> {
  return rawRequest(session, path, headers, body, cancelAfterMs).done;
}

/** rawExchange() on a fresh session to 127.0.0.1:`port`, closed after. */
export async function exchangeOnce(
  port: number,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[],
): Promise<RawExchange> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    return await rawExchange(session, path, headers, body);
  } finally {
    session.close();
  }
}

export type Protocol = "connect" | "grpc" | "grpc-web";

/** The Echo request whose bytes are `command`. */
export function message(command: string | Uint8Array): Uint8Array {
  const value = typeof command === "string" ? Buffer.from(command, "latin1") : command;
  return toBinary(BytesValueSchema, create(BytesValueSchema, { value }));
}

/** One gRPC / Connect streaming envelope: flags, 4-byte big-endian length, payload. */
export function envelope(payload: Uint8Array, flags = 0): Uint8Array {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** The headers and body of a unary Echo call carrying `command`, in `protocol`. */
export function request(
  protocol: Protocol,
  command: string | Uint8Array,
  extra: http2.OutgoingHttpHeaders = {},
): [http2.OutgoingHttpHeaders, Uint8Array] {
  if (protocol === "connect") {
    return [
      { "content-type": "application/proto", "connect-protocol-version": "1", ...extra },
      message(command),
    ];
  }
  if (protocol === "grpc-web") {
    return [{ "content-type": "application/grpc-web+proto", ...extra }, envelope(message(command))];
  }
  return [
    { "content-type": "application/grpc", te: "trailers", ...extra },
    envelope(message(command)),
  ];
}

/**
 * The fields of a gRPC-web answer's trailer envelope (flag 0x80, the body's
 * last; decompressed if flagged 0x81), read with connect-es'
 * trailerParse; a field given twice is a list. Undefined if there is none.
 */
export function grpcWebTrailerOf(hex: string): Record<string, string | string[]> | undefined {
  const body = Buffer.from(hex, "hex");
  let at = 0;
  let found: Record<string, string | string[]> | undefined;
  while (at + 5 <= body.length) {
    const flags = body[at] as number;
    const n = body.readUInt32BE(at + 1);
    if ((flags & 0x80) !== 0) {
      let data = body.subarray(at + 5, at + 5 + n);
      if ((flags & 1) !== 0) {
        data = data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data) : brotliDecompressSync(data);
      }
      found = {};
      for (const [k, v] of trailerParse(data).entries()) {
        const had = found[k];
        found[k] = had === undefined ? v : [had, v].flat();
      }
    }
    at += 5 + n;
  }
  return found;
}
