import { inspect } from "node:util";

/**
 * A fetch `Headers` over a list of name/value pairs, with no real `Headers`
 * made until a method needs one. Node 20 loads its fetch implementation
 * (undici, about 16 ms of CPU) on the first `new Headers()`, and a framed
 * call needs three of them (request header, response header, trailer):
 * that was most of a plugin's first call at cold start, and 0.5 µs of the
 * plugin's CPU per call (docs/local-transports.md). `get` and `has` answer from the pairs, as `Headers.get` and
 * `Headers.has` would (names case-insensitive, repeated values joined with
 * ", ", "; " for `cookie`), and `forEach` while there is no pair calls
 * nothing, as `Headers.forEach` would; every other method, the iterator and
 * `util.inspect` make the real `Headers` on first use and delegate to it,
 * so `new Headers(lazy)`, `new Request(url, {headers: lazy})` and the
 * errors of invalid names and values are those of a filled `Headers`.
 *
 * The one visible difference: `lazy instanceof Headers` is false (a
 * subclass of `Headers` would load undici when defined, see lazy-headers.ts;
 * ResponseHeaders, lazy-response-headers.ts, is the variant that is
 * `instanceof Headers`, for code that has loaded undici anyway).
 */
export class PairsHeaders implements Headers {
  /** The pairs (valid, values trimmed), until the real Headers is made; then undefined. */
  #pairs: [string, string][] | undefined = [];
  #made: Headers | undefined = undefined;

  /**
   * Headers from a peer's list of pairs, entries that are not two strings
   * left out. A name or value a filled `Headers` would refuse throws the
   * TypeError it would; anything this class's checks do not vouch for is
   * handed to a real `Headers` at once (so the result is always exact).
   */
  static fromPairs(pairs: unknown): PairsHeaders {
    const kept: [string, string][] = [];
    if (Array.isArray(pairs)) {
      for (const pair of pairs) {
        if (!Array.isArray(pair)) continue;
        const [name, value] = pair as unknown[];
        if (typeof name !== "string" || typeof value !== "string") continue;
        if (!TOKEN.test(name) || !PLAIN_VALUE.test(value)) return PairsHeaders.eager(pairs);
        kept.push([name, trimTabsAndSpaces(value)]);
      }
    }
    const out = new PairsHeaders();
    out.#pairs = kept;
    return out;
  }

  /** The same, built into a real Headers now (it throws what Headers throws). */
  private static eager(pairs: unknown[]): PairsHeaders {
    const real = new Headers();
    for (const pair of pairs) {
      if (Array.isArray(pair) && typeof pair[0] === "string" && typeof pair[1] === "string") {
        real.append(pair[0], pair[1]);
      }
    }
    const out = new PairsHeaders();
    out.#pairs = undefined;
    out.#made = real;
    return out;
  }

  /** True while no real Headers was made and there are no pairs: nothing to send. */
  get untouchedEmpty(): boolean {
    return this.#pairs !== undefined && this.#pairs.length === 0;
  }

  /** The real Headers, made on first need. */
  #real(): Headers {
    let real = this.#made;
    if (real === undefined) {
      real = new Headers();
      for (const [name, value] of this.#pairs ?? []) real.append(name, value);
      this.#pairs = undefined;
      this.#made = real;
    }
    return real;
  }

  // Rest parameters: a call with missing arguments reaches Headers as it
  // was made, for Headers' own error.
  get(...args: [name: string]): string | null {
    const pairs = this.#pairs;
    const name = args[0];
    // Anything but a plain token name goes to Headers, for its conversion or its error.
    if (pairs === undefined || typeof name !== "string" || !TOKEN.test(name)) {
      return this.#real().get(...args);
    }
    const lower = name.toLowerCase();
    let out: string | null = null;
    for (const [n, v] of pairs) {
      if (n.length !== lower.length || n.toLowerCase() !== lower) continue;
      out = out === null ? v : `${out}${lower === "cookie" ? "; " : ", "}${v}`;
    }
    return out;
  }

  has(...args: [name: string]): boolean {
    const pairs = this.#pairs;
    const name = args[0];
    if (pairs === undefined || typeof name !== "string" || !TOKEN.test(name)) {
      return this.#real().has(...args);
    }
    // A loop, not some() with a closure: the writers ask every answer (content-type).
    if (pairs.length === 0) return false;
    const lower = name.toLowerCase();
    for (const [n] of pairs) {
      if (n.length === lower.length && n.toLowerCase() === lower) return true;
    }
    return false;
  }

  append(...args: [name: string, value: string]): void {
    this.#real().append(...args);
  }

  delete(...args: [name: string]): void {
    this.#real().delete(...args);
  }

  set(...args: [name: string, value: string]): void {
    this.#real().set(...args);
  }

  getSetCookie(): string[] {
    return this.#real().getSetCookie();
  }

  forEach(
    ...args: [callbackfn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown]
  ): void {
    const [callbackfn] = args;
    // No pairs: Headers would call nothing, so no Headers is made (a
    // writer copying headers nobody set, the usual answer, stays lazy).
    if (typeof callbackfn === "function" && this.#pairs?.length === 0) return;
    const real = this.#real();
    // Not a function: Headers' own TypeError.
    if (typeof callbackfn !== "function") return real.forEach(...args);
    // thisArg passed through as given: Headers calls back with globalThis
    // as `this` when it is missing or undefined; the callback gets the
    // `this` Headers chose, and this object as its third argument.
    const call = (self: unknown, value: string, key: string): void =>
      callbackfn.call(self, value, key, this);
    const rest = args.slice(1) as [thisArg?: unknown];
    real.forEach(
      function (this: unknown, value, key) {
        call(this, value, key);
      },
      ...rest,
    );
  }

  keys(): HeadersIterator<string> {
    return this.#real().keys();
  }

  values(): HeadersIterator<string> {
    return this.#real().values();
  }

  entries(): HeadersIterator<[string, string]> {
    return this.#real().entries();
  }

  [Symbol.iterator](): HeadersIterator<[string, string]> {
    return this.#real()[Symbol.iterator]();
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }

  /** util.inspect shows what the real Headers' own hook shows. */
  [inspect.custom](...args: unknown[]): unknown {
    const real = this.#real();
    const hook: unknown = Reflect.get(real, inspect.custom);
    return typeof hook === "function" ? Reflect.apply(hook, real, args) : inspect(real);
  }
}

type HeadersIterator<T> = T extends string
  ? ReturnType<Headers["keys"]>
  : ReturnType<Headers["entries"]>;

/** An HTTP token (RFC 9110 `token`): every name a Headers accepts as it is. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Values a Headers keeps as they are, but for leading and trailing tabs and
 * spaces: Latin-1, no NUL, CR or LF (Headers strips CR and LF at the ends
 * and accepts them there; such values take the exact path).
 */
const PLAIN_VALUE = /^[^\0\r\n\u0100-\uffff]*$/;

/** What Headers does to a value with no CR or LF: strips tabs and spaces at both ends. */
function trimTabsAndSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isTabOrSpace(value.charCodeAt(start))) start++;
  while (end > start && isTabOrSpace(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

const isTabOrSpace = (c: number): boolean => c === 9 || c === 32;
