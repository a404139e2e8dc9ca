import type * as http2 from "node:http2";
import { NodeHeaders } from "./lazy-headers.js";

/**
 * A request's fetch `Headers` over node:http2's header object, for the
 * plugin's lean HTTP/2 path: NodeHeaders (lazy-headers.ts) with get() and
 * has() peeking. Building the `Headers` of every request was about a
 * twentieth of the plugin's CPU per lean unary call, and most calls only
 * ever ask for one header, if any (the host session's, see
 * plugin/host-sessions.ts), which peeking answers without a copy.
 */
export class IncomingHeaders extends NodeHeaders {
  constructor(node: http2.IncomingHttpHeaders) {
    super(node, "all", true);
  }
}
