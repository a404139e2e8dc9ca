import * as http from "node:http";
import * as https from "node:https";
import type {
  UniversalClientFn,
  UniversalClientRequest,
  UniversalClientResponse,
} from "@connectrpc/connect/protocol";
import { getAbortSignalReason } from "@connectrpc/connect/protocol";
import { CallOutcome } from "./call-outcome.js";
import { errorFromNode, hasNodeCode } from "./node-errors.js";
import { nodeHeadersToWeb, webHeadersToNode } from "./node-headers.js";
import { IncomingBody } from "./incoming-body.js";
import { sendBody } from "./send-body.js";

/** TLS options for an https URL. */
export interface H1Tls {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/**
 * connect-es' HTTP client over node:http / node:https (HTTP/1.1, for
 * proxies that speak nothing else; unary and server streaming only). The
 * headers are flushed at once, as over HTTP/2. Trailers (gRPC-web carries
 * them in the body; Connect unary in headers) are copied at the end.
 */
export function createH1Client(tls: H1Tls = {}): UniversalClientFn {
  return (req: UniversalClientRequest) =>
    new Promise<UniversalClientResponse>((resolve, reject) => {
      const signal = req.signal;
      if (signal?.aborted === true) {
        reject(errorFromNode(getAbortSignalReason(signal)));
        return;
      }
      const url = new URL(req.url);
      const options: http.RequestOptions = {
        method: req.method,
        headers: webHeadersToNode(req.header),
      };
      const request =
        url.protocol === "https:"
          ? https.request(url, { ...options, ...tls })
          : http.request(url, options);
      let body: IncomingBody | undefined;
      const outcome = new CallOutcome(
        reject,
        (error) => request.destroy(error),
        (error) => body?.fail(error),
      );
      const fail = (reason: unknown): void => outcome.fail(reason);
      const onAbort = (): void => fail(getAbortSignalReason(signal as AbortSignal));
      signal?.addEventListener("abort", onAbort, { once: true });
      request.on("error", (e) => {
        if (request.writableEnded && hasNodeCode(e, "ERR_STREAM_WRITE_AFTER_END")) return;
        fail(e);
      });
      request.once("close", () => signal?.removeEventListener("abort", onAbort));
      request.flushHeaders();
      request.once("response", (response) => {
        if (!outcome.settle()) {
          response.destroy();
          return;
        }
        const trailer = new Headers();
        body = new IncomingBody(
          response,
          () => errorFromNode(new Error("socket hang up")),
          undefined,
          () => !response.complete,
        );
        response.once("end", () => {
          outcome.finished = true;
          signal?.removeEventListener("abort", onAbort);
          nodeHeadersToWeb(response.trailers).forEach((v, k) => trailer.append(k, v));
        });
        response.on("error", (e) => fail(e));
        resolve({
          status: response.statusCode ?? 0,
          header: nodeHeadersToWeb(response.headers),
          body,
          trailer,
        });
      });
      sendBody(req.body, request, fail);
    });
}
