import type * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, type Compression } from "@connectrpc/connect/protocol";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { isHttp1, type CallLine } from "./lean-call.js";

/**
 * What the lean paths (unary-handler.ts, stream-handler.ts) read from
 * a request's headers, read one way for both: a call must get the same
 * timeout, URL and response encoding whichever of them serves it, and the
 * same as connect-es' handlers would give it.
 */

/** A parsed timeout header, as connect-es' parseTimeout gives it. */
export interface RequestTimeout {
  readonly timeoutMs?: number;
  readonly error?: ConnectError;
}

/** What connect-es' parseTimeout gives for a request without a timeout header. */
const NO_TIMEOUT: RequestTimeout = Object.freeze({});

/** `connect-timeout-ms`, parsed as connect-es does (no header: no deadline). */
export function connectTimeout(h: http2.IncomingHttpHeaders, maxTimeoutMs: number): RequestTimeout {
  const value = h["connect-timeout-ms"];
  return value === undefined ? NO_TIMEOUT : parseConnectTimeout(single(value), maxTimeoutMs);
}

/** `grpc-timeout`, parsed as connect-es does (no header: no deadline). */
export function grpcTimeout(h: http2.IncomingHttpHeaders, maxTimeoutMs: number): RequestTimeout {
  const value = h["grpc-timeout"];
  return value === undefined ? NO_TIMEOUT : parseGrpcTimeout(single(value), maxTimeoutMs);
}

/** A header's value; a repeated header as connect-es' Headers would join it. */
export function single(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return typeof value === "string" ? value : value.join(", ");
}

/** No content encoding, or "identity". */
export function plain(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}

/**
 * A route's URL and response encoding for each request, remembering the
 * last request's: a client sends the same `:authority`, `:path` and
 * accept-encoding on every call, so `new URL()` and the negotiation run
 * once per change, not per call.
 */
export class RequestMemo {
  private lastAccept: string | null = null;
  private lastCompression: Compression | null = null;
  private lastBase = "";
  private lastPath = "";
  private lastUrl = "";

  constructor(private readonly acceptCompression: Compression[]) {}

  /** The response encoding for an accept-encoding header (null: none), as connect-es negotiates it. */
  responseCompression(accept: string | string[] | undefined): Compression | null {
    if (accept === undefined) return null;
    const value = single(accept);
    if (value !== this.lastAccept) {
      this.lastCompression = compressionNegotiate(this.acceptCompression, null, value, "").response;
      this.lastAccept = value;
    }
    return this.lastCompression;
  }

  /** The request's URL, as connect-es' adapter makes it. Throws on an authority that makes no URL. */
  urlOf(line: CallLine, h: http2.IncomingHttpHeaders): string {
    const http1 = isHttp1(line);
    // HTTP/1.1: the request's socket (a pipelined request's response has none until its turn).
    const socket = http1 ? line.req.socket : line.session?.socket;
    const encrypted = (socket as { encrypted?: boolean } | null | undefined)?.encrypted === true;
    const authority = h[":authority"] ?? h.host;
    // HTTP/1.1 has no :path: the request line's target, as the adapter's req.url.
    const path = (http1 ? line.req.url : h[":path"]) ?? "";
    const base = `${encrypted ? "https" : "http"}://${authority}`;
    if (base !== this.lastBase || path !== this.lastPath) {
      this.lastUrl = new URL(path, base).toString();
      this.lastBase = base;
      this.lastPath = path;
    }
    return this.lastUrl;
  }
}
