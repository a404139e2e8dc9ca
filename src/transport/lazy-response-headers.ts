import { PairsHeaders } from "./lazy-pairs-headers.js";

/**
 * A lean HTTP/2 or HTTP/1.1 call's response header and trailer: a
 * PairsHeaders (no `Headers` made until a method needs one) that is
 * `instanceof Headers`, as connect-es' handlers' real ones are, so that a
 * handler cannot tell which path answered it. An answer whose handler
 * never touches them, the usual one, then costs no undici `Headers` (two
 * per call, each with its `HeadersList` and `Map`: about 540 B of the
 * plugin's allocation per call, docs/http2-server.md, session 23); the
 * writers copy them with forEach, which calls nothing and makes nothing
 * while they are empty.
 *
 * Its prototype holds PairsHeaders' methods over `Headers.prototype`, so
 * `instanceof Headers` and `Object.prototype.toString` answer as for a
 * real `Headers`; only `Headers.prototype.get.call(lazy, name)` and the
 * like refuse it (undici's brand check, an `instanceof`, lets it through,
 * then its private header list is missing: a TypeError). `instanceof
 * PairsHeaders` is false for it. The module touches the
 * global `Headers`, which makes Node 20 load undici: the framed server
 * keeps plain PairsHeaders for that reason, and only the lean paths,
 * which load it anyway (incoming-headers.ts), import this.
 */
export class ResponseHeaders extends PairsHeaders {}

Object.setPrototypeOf(
  ResponseHeaders.prototype,
  Object.create(
    Headers.prototype,
    Object.getOwnPropertyDescriptors(PairsHeaders.prototype),
  ) as object,
);
