import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Writable } from "node:stream";
import { drained } from "./drained.js";
import { stopIterator } from "./stop-iterator.js";
import {
  Code,
  ConnectError,
  createConnectRouter,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
} from "@connectrpc/connect";
import {
  validateUniversalHandlerOptions,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalHandlerOptions,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { methodPath } from "./call-support.js";
import { defaultCompressions } from "./compression.js";
import { onResponseClose } from "./h1-close.js";
import { errorFromNode, errorFromRstCode } from "./node-errors.js";
import { nodeHeadersToWeb, webHeadersToNode } from "./node-headers.js";
import { IncomingBody } from "./incoming-body.js";
import { collectMethods } from "./framed/methods.js";
import { ContextFactory } from "./handler-context.js";
import type { StreamClaim } from "./h2-streams.js";
import { LeanStream } from "./stream-handler.js";
import { LeanUnary, dropUnreachableTimeout, type Peer } from "./unary-handler.js";
import { abandonResponse, addTrailers } from "./unary-wire.js";
import {
  enveloped,
  hideLength,
  promised,
  upfrontLength,
  wholeEnvelopes,
} from "./whole-envelopes.js";

/** A request as node:http and node:http2 (compatibility API) deliver it. */
export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
/** The response to a NodeRequest. */
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
/** A request listener that both node:http and node:http2 servers accept. */
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

/**
 * The adapter: a request listener, and `claimStream`, which serves the
 * unary calls the lean path takes straight from node:http2's "stream"
 * event, without node's compatibility objects (see claimStreams() in
 * h2-streams.ts). The listener alone serves everything too.
 */
export type NodeAdapter = NodeHandler & { readonly claimStream: StreamClaim };

export interface NodeAdapterOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** Answers a request that matches no route. Default: a bare 404 (the Connect protocol's Unimplemented). */
  readonly fallback?: NodeHandler;
  /**
   * Context values for the handler, from the request (the caller's address,
   * say); for a call served from the bare stream, an object with the
   * connection's socket.
   */
  readonly contextValues?: (req: Peer) => ContextValues;
  /**
   * Serve unary calls in binary protobuf (Connect, gRPC and gRPC-web, over
   * HTTP/2 and HTTP/1.1) on the lean path (unary-handler.ts) instead of
   * connect-es' handlers.
   * Default true; the answers are the same either way.
   */
  readonly lean?: boolean;
  /**
   * With `lean`, serve streaming calls of every kind (server, client and
   * bidi) in binary protobuf over HTTP/2 (Connect, gRPC and gRPC-web) on
   * the lean streaming path (stream-handler.ts). Default true; false
   * leaves them all to connect-es' handlers (the same answers, several
   * times the CPU per message: docs/http2-streams.md, sessions 16, 21
   * and 22).
   */
  readonly leanStreams?: boolean;
}

/** A route: connect-es' handler, and the lean path when the method can take it. */
interface Route {
  readonly handler: UniversalHandler;
  readonly lean: LeanUnary | LeanStream | undefined;
  /** The limits connect-es' handler applies (the route's own options', else the adapter's). */
  readonly limits: Limits;
}

/** The options of connect-es' handlers that the adapter applies too, before them. */
type Limits = Pick<UniversalHandlerOptions, "readMaxBytes" | "maxTimeoutMs">;

/**
 * Serves a ConnectRouter on node:http and node:http2, in the Connect, gRPC
 * and gRPC-web protocols: calls in binary protobuf on the lean paths
 * (`lean`, `leanStreams`), everything else through connect-es' universal
 * handlers, for which this only moves bytes and headers between Node's
 * request and response and them. gzip and Brotli are accepted unless
 * `acceptCompression` says otherwise.
 *
 * A handler's request signal aborts when the client goes away: over
 * HTTP/2 with the error the RST_STREAM code means (CANCEL is Canceled), over
 * HTTP/1.1 when the connection closes.
 */
export function createNodeAdapter(options: NodeAdapterOptions): NodeAdapter {
  const routerOptions = {
    ...options,
    acceptCompression: options.acceptCompression ?? defaultCompressions,
  };
  const router = createConnectRouter(routerOptions);
  const leanOptions = validateUniversalHandlerOptions(routerOptions);
  /** Limits of the paths registered with options of their own (connect-es' handlers apply them). */
  const ownLimits = new Map<string, Limits>();
  // As connect-es' router gives its handlers: the adapter's options
  // overlaid with the registration's (whichProtocols); a later
  // registration without options takes the note back.
  const methods = collectMethods(options.routes, router, (method, own) => {
    if (own === undefined) ownLimits.delete(methodPath(method));
    else {
      const { readMaxBytes, maxTimeoutMs } = validateUniversalHandlerOptions({
        ...leanOptions,
        ...own,
      });
      ownLimits.set(methodPath(method), { readMaxBytes, maxTimeoutMs });
    }
  });
  const contexts = new ContextFactory(options.shutdownSignal);
  const contextValues = options.contextValues;
  const paths = new Map<string, Route>();
  for (const handler of router.handlers) {
    const entry = methods.get(handler.requestPath);
    const leanEntry =
      options.lean !== false && entry?.method === handler.method ? entry : undefined;
    let lean: Route["lean"];
    if (leanEntry?.method.methodKind === "unary") {
      lean = new LeanUnary(leanEntry, handler, leanOptions, contexts, contextValues);
    } else if (leanEntry !== undefined && options.leanStreams !== false) {
      lean = new LeanStream(leanEntry, handler, leanOptions, contexts, contextValues);
    }
    const limits = ownLimits.get(handler.requestPath) ?? leanOptions;
    paths.set(handler.requestPath, { handler, lean, limits });
  }
  const fallback = options.fallback ?? notFound;
  const serve = (route: Route, req: NodeRequest, res: NodeResponse, replay?: Replay): void => {
    const { readMaxBytes, maxTimeoutMs } = route.limits;
    const uReq = universalRequest(req, res, contextValues?.(req), readMaxBytes, replay);
    dropUnreachableTimeout(uReq.header, maxTimeoutMs);
    route
      .handler(uReq)
      .then((uRes) => writeResponse(uRes, res))
      .catch((reason: unknown) => {
        // The client went away while we answered: nothing to tell anyone.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        abandonResponse(res);
      });
  };
  /** Streams claimStream took, then handed back with the body read so far. */
  const handedOver = new WeakMap<http2.ServerHttp2Stream, Replay>();
  const handler: NodeHandler = (req, res) => {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    const route = paths.get(query < 0 ? url : url.slice(0, query));
    if (route === undefined) {
      fallback(req, res);
      return;
    }
    const lean = route.lean;
    if (lean !== undefined && "stream" in req) {
      const replay = handedOver.get(req.stream);
      if (replay !== undefined) {
        serve(route, req, res, replay);
        return;
      }
      if (
        lean.serve(req.stream, req.headers, req, req, res, (chunks, ended) =>
          serve(route, req, res, { chunks, ended }),
        )
      ) {
        return;
      }
    } else if (
      lean instanceof LeanUnary &&
      // HTTP/1.1 (a browser over cleartext, say): unary calls only.
      lean.serve(res as http.ServerResponse, req.headers, req, req, res, (chunks, ended) =>
        serve(route, req, res, { chunks, ended }),
      )
    ) {
      return;
    }
    serve(route, req, res);
  };
  const claimStream: StreamClaim = (stream, headers, handOver) => {
    // Expect (100-continue) is the compatibility layer's to answer.
    if (headers.expect !== undefined) return false;
    const path = headers[":path"] ?? "";
    const query = path.indexOf("?");
    const lean = paths.get(query < 0 ? path : path.slice(0, query))?.lean;
    if (lean === undefined) return false;
    const peer: Peer | undefined =
      contextValues === undefined ? undefined : { socket: stream.session?.socket };
    return lean.serve(stream, headers, peer ?? NO_PEER, stream, stream, (chunks, ended) => {
      handedOver.set(stream, { chunks, ended });
      handOver();
    });
  };
  return Object.assign(handler, { claimStream });
}

/** The body the lean path read before it handed a call over, and whether that was all of it. */
interface Replay {
  readonly chunks: readonly Buffer[];
  readonly ended: boolean;
}

const NO_PEER: Peer = { socket: undefined };

const notFound: NodeHandler = (_req, res) => {
  res.writeHead(404);
  res.end();
};

function universalRequest(
  req: NodeRequest,
  res: NodeResponse,
  contextValues: ContextValues | undefined,
  readMaxBytes: number,
  replay?: Replay,
): UniversalServerRequest {
  const h2 = "stream" in req;
  const encrypted = (req.socket as { encrypted?: boolean } | null)?.encrypted === true;
  const authority = h2 ? req.authority : req.headers.host;
  if (authority === undefined) {
    throw new ConnectError("the request names no authority (no Host header)", Code.InvalidArgument);
  }
  const abort = new AbortController();
  // Once the response is complete, nobody listens: aborting then would only
  // cost a DOMException per call.
  if (h2) {
    req.once("close", () => {
      if (!res.writableEnded) abort.abort(errorFromRstCode(req.stream.rstCode));
    });
  } else {
    const onError = (e: Error): void => abort.abort(errorFromNode(e));
    req.once("error", onError);
    // A request emits "close" once its body is read; the response's "close" is the connection's end
    // (or its own: onResponseClose sees a queued pipelined response's connection go too).
    onResponseClose(res as http.ServerResponse, () => {
      req.off("error", onError);
      if (!res.writableEnded) abort.abort(req.errored ? errorFromNode(req.errored) : undefined);
    });
  }
  let body: AsyncIterable<Uint8Array> =
    replay === undefined ? incomingBody(req) : replayBody(req, replay.chunks, replay.ended);
  const header = nodeHeadersToWeb(req.headers);
  // connect-es would allocate what a peer announces (an envelope's head, a
  // Content-Length) before the bytes came.
  if (enveloped(req.headers["content-type"])) body = wholeEnvelopes(body, readMaxBytes);
  else {
    const length = upfrontLength(req.headers["content-length"], readMaxBytes);
    if (length !== undefined) {
      hideLength(header);
      body = promised(body, length);
    }
  }
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: new URL(req.url ?? "", `${encrypted ? "https" : "http"}://${authority}`).toString(),
    header,
    body,
    signal: abort.signal,
    ...(contextValues !== undefined && { contextValues }),
  };
}

function incomingBody(req: NodeRequest): IncomingBody {
  return new IncomingBody(
    req,
    () => new ConnectError("the client went away before the request ended", Code.Aborted),
  );
}

/**
 * The body of a request the lean path read part (or all, `ended`) of
 * before handing it over: those chunks again, then the rest as it comes.
 * The request is paused when it is handed over part-read.
 */
function replayBody(
  req: NodeRequest,
  chunks: readonly Buffer[],
  ended: boolean,
): AsyncIterable<Uint8Array> {
  // Listening from now on, so that an end or reset while paused is seen.
  const rest = ended ? undefined : incomingBody(req);
  req.resume();
  return (async function* () {
    yield* chunks;
    if (rest !== undefined) yield* rest;
  })();
}

/**
 * Writes a universal response. The headers go out with the first body
 * chunk, not before: the handler may still set response headers until it
 * yields. Trailers (gRPC) follow the last chunk.
 */
async function writeResponse(uRes: UniversalServerResponse, res: NodeResponse): Promise<void> {
  const it = uRes.body?.[Symbol.asyncIterator]();
  try {
    if (it !== undefined) {
      let chunk = await it.next();
      res.writeHead(uRes.status, webHeadersToNode(uRes.header ?? new Headers()));
      for (; chunk.done !== true; chunk = await it.next()) {
        try {
          await write(res, chunk.value);
        } catch (e) {
          // Tell the handler its response could not be sent (a server stream's send() fails).
          void it.throw?.(e).catch(() => {});
          throw e;
        }
      }
    }
    if (!res.headersSent)
      res.writeHead(uRes.status, webHeadersToNode(uRes.header ?? new Headers()));
    if (uRes.trailer !== undefined) {
      const trailers = webHeadersToNode(uRes.trailer);
      // Over HTTP/2, trailers node:http2 refuses reset the stream (addTrailers).
      if (!("stream" in res)) res.addTrailers(trailers);
      else if (!addTrailers(res, trailers)) return;
    }
    await new Promise<void>((resolve) => {
      (res as Writable).end(resolve);
    });
  } catch (e) {
    throw errorFromNode(e);
  } finally {
    stopIterator(it);
  }
}

/** Writes one chunk, waiting for "drain" if the stream asks for it. */
function write(res: NodeResponse, data: Uint8Array): Promise<void> {
  const out = res as Writable;
  if (out.errored) return Promise.reject(out.errored);
  if (out.destroyed || out.writableEnded) {
    return Promise.reject(new ConnectError("the client went away", Code.Aborted));
  }
  if (out.write(data)) return Promise.resolve();
  return drained(out).then((open) => {
    if (!open) throw out.errored ?? new ConnectError("the client went away", Code.Aborted);
  });
}
