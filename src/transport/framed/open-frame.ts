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

/** Encodes open frames, reusing the bytes of the last one with the same path and headers. */
export class OpenEncoder {
  /** Frames without headers or deadline, by path (a service's methods). */
  private readonly plain = new Map<string, Buffer>();
  private lastPath = "";
  private lastPairs: [string, string][] | undefined;
  private lastPayload: Buffer | undefined;

  encode(path: string, header: Headers, timeoutMs: number | undefined): Buffer {
    const h = headersToPairs(header);
    if (timeoutMs !== undefined) {
      return jsonPayload({ p: path, t: timeoutMs, ...(h && { h }) });
    }
    if (h === undefined) {
      let payload = this.plain.get(path);
      if (payload === undefined) {
        payload = jsonPayload({ p: path });
        // Paths are a service's methods; the bound only guards against a caller inventing them.
        if (this.plain.size < 1024) this.plain.set(path, payload);
      }
      return payload;
    }
    if (
      this.lastPayload !== undefined &&
      path === this.lastPath &&
      samePairs(h, this.lastPairs as [string, string][])
    ) {
      return this.lastPayload;
    }
    const payload = jsonPayload({ p: path, h });
    this.lastPath = path;
    this.lastPairs = h;
    this.lastPayload = payload;
    return payload;
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
