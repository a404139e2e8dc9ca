/**
 * The payload of an open frame, `{p: path, t?: timeoutMs, h?: [[name,
 * value], ...]}` as JSON, encoded on the host and decoded on the plugin,
 * each with a cache of the last distinct frame.
 *
 * A host's calls mostly carry the same bytes: the same method and the same
 * headers (the launch token, the callback session), no deadline. JSON.stringify
 * and JSON.parse of them cost about 0.5 µs each per call, a twentieth of a
 * call's CPU on 64 concurrent callers; a hit costs a comparison instead.
 */
import { headersToPairs, jsonPayload, parseJson } from "./frames.js";

/** What the plugin reads from an open frame. Shared between calls: never change it. */
export interface OpenHead {
  readonly p?: unknown;
  readonly t?: unknown;
  readonly h?: unknown;
}

/**
 * Encodes open frames, reusing the bytes of the last one with the same path
 * and headers. `callHeaders` go with every call after the call's own
 * headers, replacing any of the same name (names in lower case).
 */
export class OpenEncoder {
  /** Frames without headers of the call's own or deadline, by path (a service's methods). */
  private readonly plain = new Map<string, Buffer>();
  private lastPath = "";
  private lastPairs: [string, string][] | undefined;
  private lastPayload: Buffer | undefined;
  private readonly fixed: [string, string][];
  private readonly fixedNames: ReadonlySet<string>;

  constructor(callHeaders: readonly (readonly [string, string])[] = []) {
    this.fixed = callHeaders.map(([name, value]) => [name, value]);
    this.fixedNames = new Set(this.fixed.map(([name]) => name));
  }

  encode(path: string, header: Headers, timeoutMs: number | undefined): Buffer {
    const own = headersToPairs(header);
    if (timeoutMs !== undefined) {
      const h = this.withFixed(own);
      return jsonPayload({ p: path, t: timeoutMs, ...(h && { h }) });
    }
    if (own === undefined) {
      let payload = this.plain.get(path);
      if (payload === undefined) {
        const h = this.withFixed(undefined);
        payload = jsonPayload({ p: path, ...(h && { h }) });
        // Paths are a service's methods; the bound only guards against a caller inventing them.
        if (this.plain.size < 1024) this.plain.set(path, payload);
      }
      return payload;
    }
    if (
      this.lastPayload !== undefined &&
      path === this.lastPath &&
      samePairs(own, this.lastPairs as [string, string][])
    ) {
      return this.lastPayload;
    }
    const payload = jsonPayload({ p: path, h: this.withFixed(own) });
    this.lastPath = path;
    this.lastPairs = own;
    this.lastPayload = payload;
    return payload;
  }

  /** The call's own headers (minus those callHeaders replace), then callHeaders. */
  private withFixed(own: [string, string][] | undefined): [string, string][] | undefined {
    if (this.fixed.length === 0) return own;
    if (own === undefined) return this.fixed;
    return [...own.filter(([name]) => !this.fixedNames.has(name)), ...this.fixed];
  }
}

function samePairs(a: [string, string][], b: [string, string][]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as [string, string];
    const y = b[i] as [string, string];
    if (x[0] !== y[0] || x[1] !== y[1]) return false;
  }
  return true;
}

/** Frames up to this size are remembered (a copy is kept); larger ones are parsed every time. */
const REMEMBER_BYTES = 4096;

/** Decodes open frames, parsing again only when the bytes differ from the last remembered frame. */
export class OpenDecoder {
  private lastBytes: Buffer | undefined;
  private lastHead: OpenHead | undefined;

  /** Throws (JSON.parse's SyntaxError) on a malformed frame. */
  decode(payload: Uint8Array): OpenHead | undefined {
    const last = this.lastBytes;
    if (last !== undefined && Buffer.compare(payload, last) === 0) return this.lastHead;
    const head = parseJson(payload) as OpenHead | undefined;
    // A frame with a deadline differs every time: not worth a copy.
    if (
      typeof head === "object" &&
      head !== null &&
      head.t === undefined &&
      payload.byteLength <= REMEMBER_BYTES
    ) {
      // A copy: the payload is a view of a read chunk, which must not be kept.
      this.lastBytes = Buffer.from(payload);
      this.lastHead = head;
    }
    return head;
  }
}
