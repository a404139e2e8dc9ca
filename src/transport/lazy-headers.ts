import type * as http2 from "node:http2";
import { PEEKS } from "./peek-headers.js";

/** Which fields of a Connect unary response a NodeHeaders holds. */
export type HeaderPick = "all" | "header" | "trailer";

/** The prefix of a Connect unary trailer field sent as a header. */
export const TRAILER = "trailer-";

/** A header name as fetch `Headers` accepts it (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Fetch `Headers` over a node:http2 header object, copied into undici's
 * list only when first needed: the request headers of the plugin's lean
 * HTTP/2 path (IncomingHeaders, incoming-headers.ts) and the response
 * headers and trailers of the host's unary clients. Building them (undici
 * validates and normalizes every name and value, about 10 headers a call)
 * cost a few µs per call, and most calls never read them, or only one
 * header. Every method of `Headers` copies first, so the object behaves as
 * a filled `Headers` in every use, `instanceof Headers` and the init of
 * `new Headers(...)` (read through its iterator) included. HTTP/2
 * pseudo-headers (`:status`, `:path`) are left out, as nodeHeadersToWeb does.
 *
 * `pick` (default "all") splits a Connect unary response as connect-es'
 * trailerDemux does: "header" leaves out the `trailer-` fields, "trailer"
 * holds only those, without the prefix.
 *
 * `peek` (default false; with pick "all" only): get() and has() of a valid
 * name answer from node's object while nothing was copied, with the value
 * the copy would give (an array, as node gives set-cookie, joined with
 * ", "); a value the copy would change or refuse (whitespace at its ends,
 * a control character: nghttp2 lets neither through) makes them copy first.
 */
export class NodeHeaders extends Headers {
  #node: http2.IncomingHttpHeaders | undefined;
  readonly #pick: HeaderPick;
  readonly #peek: boolean;

  constructor(node: http2.IncomingHttpHeaders, pick: HeaderPick = "all", peek = false) {
    super();
    this.#node = node;
    this.#pick = pick;
    this.#peek = peek && pick === "all";
  }

  /** Whether nothing was copied yet. */
  get untouched(): boolean {
    return this.#node !== undefined;
  }

  /** Whether get() and has() answer from node's object now (see peek-headers.ts). */
  get [PEEKS](): boolean {
    return this.#peek && this.#node !== undefined;
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

  /** The value Headers.get(name) would give, or undefined if only a copy can tell. */
  #peekAt(name: unknown): string | null | undefined {
    const node = this.#node;
    if (node === undefined || !this.#peek || typeof name !== "string" || !TOKEN.test(name)) {
      return undefined;
    }
    const value = node[name.toLowerCase()];
    if (value === undefined) return null;
    if (typeof value === "string") return clean(value) ? value : undefined;
    if (!Array.isArray(value)) return undefined;
    for (const v of value) if (!clean(v)) return undefined;
    return value.join(", ");
  }

  static {
    // Every other method of Headers (and its iterator and util.inspect hook,
    // which read undici's own list), whatever the Node version has, copies
    // first. Methods only: undici's internal getters (its sorted list) are
    // read by its own methods, once this one has filled.
    const proto = Headers.prototype;
    for (const key of Reflect.ownKeys(proto)) {
      const own = Object.getOwnPropertyDescriptor(proto, key)?.value as unknown;
      if (key === "constructor" || key === "get" || key === "has" || typeof own !== "function") {
        continue;
      }
      Object.defineProperty(NodeHeaders.prototype, key, {
        value: function (this: NodeHeaders, ...args: unknown[]): unknown {
          this.#fill();
          return (own as (...a: unknown[]) => unknown).apply(this, args);
        },
        writable: true,
        configurable: true,
      });
    }
    // Defined here, as Headers' own are: TypeScript types them as properties.
    Object.defineProperty(NodeHeaders.prototype, "get", {
      // The arguments go on as given: without any, Headers throws its TypeError.
      value: function (this: NodeHeaders, ...args: string[]): string | null {
        const value = args.length === 0 ? undefined : this.#peekAt(args[0]);
        if (value !== undefined) return value;
        this.#fill();
        return get.apply(this, args as [string]);
      },
      writable: true,
      configurable: true,
    });
    Object.defineProperty(NodeHeaders.prototype, "has", {
      value: function (this: NodeHeaders, ...args: string[]): boolean {
        const value = args.length === 0 ? undefined : this.#peekAt(args[0]);
        if (value !== undefined) return value !== null;
        this.#fill();
        return has.apply(this, args as [string]);
      },
      writable: true,
      configurable: true,
    });
  }
}

const { append, get, has } = Headers.prototype;

/**
 * A value undici keeps as it is: no HTTP whitespace at either end (which
 * it would strip) and no NUL, CR or LF (which it refuses).
 */
function clean(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  if (isWhitespace(value.charCodeAt(0)) || isWhitespace(value.charCodeAt(n - 1))) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 10 || c === 13) return false;
  }
  return true;
}

function isWhitespace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}
