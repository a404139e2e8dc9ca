import type * as http2 from "node:http2";

/** Which fields of a Connect unary response a NodeHeaders holds. */
export type HeaderPick = "all" | "header" | "trailer";

/** The prefix of a Connect unary trailer field sent as a header. */
export const TRAILER = "trailer-";

/**
 * Fetch `Headers` over a node:http2 header object, copied in only when first
 * used. A unary response carries its headers and trailers as `Headers`, but
 * most callers never read them, and building them (undici validates and
 * normalizes every name and value) cost a few µs per call on the lean
 * HTTP/2 path. Every method of `Headers` is overridden to copy first, so
 * the object behaves as a filled `Headers` in every use, including as the
 * init of `new Headers(...)` (which reads it through its iterator).
 *
 * `pick` splits a Connect unary response as connect-es' trailerDemux does:
 * "header" leaves out the `trailer-` fields, "trailer" holds only those,
 * without the prefix. HTTP/2 pseudo-headers (`:status`) are left out.
 */
export class NodeHeaders extends Headers {
  #node: http2.IncomingHttpHeaders | undefined;
  readonly #pick: HeaderPick;

  constructor(node: http2.IncomingHttpHeaders, pick: HeaderPick = "all") {
    super();
    this.#node = node;
    this.#pick = pick;
  }

  #fill(): void {
    const node = this.#node;
    if (node === undefined) return;
    this.#node = undefined;
    const pick = this.#pick;
    for (const key in node) {
      if (key.charCodeAt(0) === 58 /* ":" */) continue;
      const value = node[key];
      if (value === undefined) continue;
      let name = key;
      if (pick !== "all") {
        const isTrailer = key.toLowerCase().startsWith(TRAILER);
        if (isTrailer !== (pick === "trailer")) continue;
        if (isTrailer) name = key.substring(TRAILER.length);
      }
      if (Array.isArray(value)) for (const v of value) append.call(this, name, v);
      else append.call(this, name, typeof value === "string" ? value : String(value));
    }
  }

  static {
    // Every method of Headers (and its iterator and util.inspect hook, which
    // read undici's own list), whatever the Node version has, fills first.
    const proto = Headers.prototype;
    for (const key of Reflect.ownKeys(proto)) {
      // Methods only: undici's internal getters (its sorted list) are read
      // by its own methods, once this one has filled.
      const own = Object.getOwnPropertyDescriptor(proto, key)?.value as unknown;
      if (key === "constructor" || typeof own !== "function") continue;
      Object.defineProperty(NodeHeaders.prototype, key, {
        value: function (this: NodeHeaders, ...args: unknown[]): unknown {
          this.#fill();
          return (own as (...a: unknown[]) => unknown).apply(this, args);
        },
        writable: true,
        configurable: true,
      });
    }
  }
}

const append = Headers.prototype.append;
