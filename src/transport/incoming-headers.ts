import type * as http2 from "node:http2";
import { PEEKS } from "./peek-headers.js";

/** A header name as fetch `Headers` accepts it (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * A request's fetch `Headers` over node:http2's header object, copied into
 * undici's list only when first used for anything but get() and has().
 * Building the `Headers` of every request (undici validates and
 * normalizes each name and value, about 10 headers a call) was about a
 * twentieth of the plugin's CPU per lean HTTP/2 unary call, and most calls
 * only ever ask for one header, if any (the host session's, see
 * plugin/host-sessions.ts). get() and has() of a valid name answer from
 * node's object while nothing was copied, with the value the copy would
 * give (an array, as node gives set-cookie, joined with ", "); a value the
 * copy would change or refuse (whitespace at its ends, a control
 * character: nghttp2 lets neither through) makes them copy first. Every
 * other method of `Headers` copies first, so the object is a filled
 * `Headers` in every use, `instanceof Headers` included. HTTP/2
 * pseudo-headers (`:path`, ...) are left out, as nodeHeadersToWeb does.
 */
export class IncomingHeaders extends Headers {
  #node: http2.IncomingHttpHeaders | undefined;

  constructor(node: http2.IncomingHttpHeaders) {
    super();
    this.#node = node;
  }

  /** Whether nothing was copied yet (get() and has() still read node's object). */
  get untouched(): boolean {
    return this.#node !== undefined;
  }

  /** untouched, for code that must not import this module (see peek-headers.ts). */
  get [PEEKS](): boolean {
    return this.#node !== undefined;
  }

  #fill(): void {
    const node = this.#node;
    if (node === undefined) return;
    this.#node = undefined;
    for (const key in node) {
      if (key.charCodeAt(0) === 58 /* ":" */) continue;
      const value = node[key];
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) append.call(this, key, v);
      else append.call(this, key, typeof value === "string" ? value : String(value));
    }
  }

  /** The value Headers.get(name) would give, or undefined if only a copy can tell. */
  #peek(name: unknown): string | null | undefined {
    const node = this.#node;
    if (node === undefined || typeof name !== "string" || !TOKEN.test(name)) return undefined;
    const value = node[name.toLowerCase()];
    if (value === undefined) return null;
    if (typeof value === "string") return clean(value) ? value : undefined;
    if (!Array.isArray(value)) return undefined;
    for (const v of value) if (!clean(v)) return undefined;
    return value.join(", ");
  }

  static {
    // Every other method of Headers (its iterator and util.inspect hook
    // too), whatever the Node version has, copies first.
    const proto = Headers.prototype;
    for (const key of Reflect.ownKeys(proto)) {
      const own = Object.getOwnPropertyDescriptor(proto, key)?.value as unknown;
      if (key === "constructor" || key === "get" || key === "has" || typeof own !== "function") {
        continue;
      }
      Object.defineProperty(IncomingHeaders.prototype, key, {
        value: function (this: IncomingHeaders, ...args: unknown[]): unknown {
          this.#fill();
          return (own as (...a: unknown[]) => unknown).apply(this, args);
        },
        writable: true,
        configurable: true,
      });
    }
    // Defined here, as Headers' own are: TypeScript types them as properties.
    Object.defineProperty(IncomingHeaders.prototype, "get", {
      // The arguments go on as given: without any, Headers throws its TypeError.
      value: function (this: IncomingHeaders, ...args: string[]): string | null {
        const value = args.length === 0 ? undefined : this.#peek(args[0]);
        if (value !== undefined) return value;
        this.#fill();
        return get.apply(this, args as [string]);
      },
      writable: true,
      configurable: true,
    });
    Object.defineProperty(IncomingHeaders.prototype, "has", {
      value: function (this: IncomingHeaders, ...args: string[]): boolean {
        const value = args.length === 0 ? undefined : this.#peek(args[0]);
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
