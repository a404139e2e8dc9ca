import type * as http from "node:http";
import type * as http2 from "node:http2";

/**
 * Node's header objects to fetch `Headers`, and back. HTTP/2 pseudo-headers
 * (`:status`, `:path`, ...) are left out: the Connect protocol code never
 * reads them.
 */
export function nodeHeadersToWeb(
  node: http.IncomingHttpHeaders | http2.IncomingHttpHeaders | http.OutgoingHttpHeaders,
): Headers {
  const header = new Headers();
  for (const key in node) {
    if (key.charCodeAt(0) === 58 /* ":" */) continue;
    const value = node[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) header.append(key, v);
    else header.append(key, typeof value === "string" ? value : String(value));
  }
  return header;
}

/** Fetch `Headers` to a Node header object; repeated names become arrays. */
export function webHeadersToNode(
  header: Headers,
  into: http.OutgoingHttpHeaders = {},
): http.OutgoingHttpHeaders {
  // The object to fill is forEach's `this`: no closure per call.
  header.forEach(appendTo, into);
  return into;
}

let seen = false;
const see = (): void => {
  seen = true;
};

/**
 * True when `header` has no field: one pass of forEach, no iterator or
 * closure made (and, for a lazy one, no Headers: lazy-pairs-headers.ts).
 */
export function isEmptyHeaders(header: Headers): boolean {
  seen = false;
  header.forEach(see);
  return !seen;
}

/** Adds a header to a Node header object; a repeated name becomes an array. */
export function appendHeader(into: http.OutgoingHttpHeaders, key: string, value: string): void {
  const existing = into[key];
  if (existing === undefined) into[key] = value;
  else if (Array.isArray(existing)) existing.push(value);
  else into[key] = [String(existing), value];
}

/** webHeadersToNode's forEach callback, the object to fill as `this`. */
function appendTo(this: http.OutgoingHttpHeaders, value: string, key: string): void {
  appendHeader(this, key, value);
}

/**
 * Whether node:http2 refuses to send these headers as trailers: a
 * connection-specific field (RFC 9113 section 8.2.2, and node's own list:
 * `host` and `http2-settings` too; `te` other than "trailers"). Its
 * sendTrailers() throws ERR_HTTP2_INVALID_CONNECTION_HEADERS for them, and
 * node's compatibility response calls it where nothing catches the error.
 */
export function refusedAsTrailers(trailers: http.OutgoingHttpHeaders): boolean {
  for (const name of Object.keys(trailers)) {
    if (CONNECTION_SPECIFIC.has(name)) return true;
    if (name === "te" && String(trailers[name]) !== "trailers") return true;
  }
  return false;
}

const CONNECTION_SPECIFIC = new Set([
  "connection",
  "upgrade",
  "host",
  "http2-settings",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
]);
