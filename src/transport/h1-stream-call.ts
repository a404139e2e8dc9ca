import type * as http from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { cutBefore, type H1Call } from "./h1-pool.js";
import { StreamCall } from "./stream-call.js";

/**
 * A stream call (StreamCall) on an HTTP/1.1 request (H1Target): the
 * request's messages are its chunked body, the response's body is read
 * (and paused while the queue is full, which stops reading the socket) once
 * its head is in. Stopping it destroys the request, and with it the
 * connection: HTTP/1.1 has no other way to cancel.
 */
export class H1StreamCall<O extends DescMessage>
  extends StreamCall<O, http.ClientRequest>
  implements H1Call
{
  private response: http.IncomingMessage | undefined;

  answered(response: http.IncomingMessage): void {
    this.response = response;
    this.source = response;
    this.respond(response.statusCode ?? 0, response.headers);
  }

  bodyEnd(): void {
    this.end();
  }

  protected reset(): void {
    this.out.destroy();
  }

  protected cut(responded: boolean): ConnectError {
    return cutBefore(responded, this.response?.errored);
  }

  /** An end node did not read in full (the connection broke) is not the response's, unless the protocol's end came first. */
  protected cutAtEnd(protocolEnded: boolean): boolean {
    return this.response?.complete !== true && !protocolEnded;
  }
}
