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
  header.forEach((value, key) => {
    const existing = into[key];
    if (existing === undefined) into[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else into[key] = [String(existing), value];
  });
  return into;
}
