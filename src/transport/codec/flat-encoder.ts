import type { DescMessage } from "@bufbuild/protobuf";
import { Kind, shapeOf } from "./flat-schema.js";

interface FlatField {
  readonly name: string;
  readonly kind: Kind;
  /** The field's tag as a varint (field number and wire type), ready to copy. */
  readonly tag: Uint8Array;
  /** Zero value of an enum field (its first value), which is not written. */
  readonly enumZero: number;
}

/** Size of `value` (a uint32) as a varint. */
function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

function writeVarint(buf: Uint8Array, at: number, value: number): number {
  while (value > 0x7f) {
    buf[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[at++] = value;
  return at;
}

/** protobuf-es' varint32write for a negative int32: ten bytes, sign-extended. */
function writeNegativeInt32(buf: Uint8Array, at: number, value: number): number {
  for (let i = 0; i < 9; i++) {
    buf[at++] = (value & 127) | 128;
    value >>= 7;
  }
  buf[at++] = 1;
  return at;
}

const encoders = new WeakMap<DescMessage, FlatEncoder | undefined>();

/**
 * Writes "flat" messages (proto3-style fields with implicit presence, of
 * the kinds bytes, string, bool, int32, uint32 and enum; no oneof, list,
 * map or message field) straight into a buffer (a frame of the framed
 * transport, an HTTP/2 request body after its gRPC prefix): the bytes
 * protobuf-es' toBinary gives, without its writer, its two Uint8Arrays per
 * message (made slowly by V8) and the copy of the result into the frame.
 * In a 16-byte server stream toBinary was about a third of the plugin's
 * busy time. Any other schema, and any message this cannot write exactly
 * as toBinary would (a value out of range or of the wrong type, unknown
 * fields, another message type), returns -1 from measure(): the caller
 * then uses toBinary, which also throws toBinary's errors.
 */
export class FlatEncoder {
  /** The encoder of `schema`, or undefined if its messages are not flat. */
  static of(schema: DescMessage): FlatEncoder | undefined {
    let encoder = encoders.get(schema);
    if (encoder === undefined && !encoders.has(schema)) {
      encoder = FlatEncoder.build(schema);
      encoders.set(schema, encoder);
    }
    return encoder;
  }

  private static build(schema: DescMessage): FlatEncoder | undefined {
    const { plain, kinds } = shapeOf(schema);
    if (plain === undefined || kinds === undefined) return undefined;
    const fields: FlatField[] = [];
    // toBinary writes fields in field-number order.
    const order = plain.map((field, i) => ({ field, kind: kinds[i] as Kind }));
    order.sort((a, b) => a.field.number - b.field.number);
    for (const { field, kind } of order) {
      const wireType = kind === Kind.bytes || kind === Kind.string ? 2 : 0;
      const key = ((field.number << 3) | wireType) >>> 0;
      const tag = new Uint8Array(varintSize(key));
      writeVarint(tag, 0, key);
      const enumZero = field.fieldKind === "enum" ? (field.enum.values[0]?.number ?? 0) : 0;
      fields.push({ name: field.localName, kind, tag, enumZero });
    }
    return new FlatEncoder(schema.typeName, fields);
  }

  /** Per field of the message measured last: its length (bytes, string), or -1 when not written. */
  private readonly lengths: number[];
  /**
   * Per field of the message measured last: the value measured, which
   * write() writes (a getter read again could give another value, and the
   * frame's length would not match its payload). Cleared by write().
   */
  private readonly values: unknown[];
  /** True while measure() reads a message (whose getters may call measure() again). */
  private measuring = false;

  private constructor(
    private readonly typeName: string,
    private readonly fields: readonly FlatField[],
  ) {
    this.lengths = fields.map(() => -1);
    this.values = fields.map(() => undefined);
  }

  /** Drops the values of the message measured last (not to be written). */
  clear(): void {
    this.values.fill(undefined);
  }

  /**
   * The encoded size of `message`, or -1 if this encoder cannot write it
   * exactly as toBinary would. write() must follow for the same message
   * before another measure().
   */
  measure(message: unknown): number {
    // A getter of the message being measured may itself send a message of
    // this schema (synchronously, as a client call does up to its request
    // body): that one is left to toBinary, and the state of the outer
    // message is not touched.
    if (this.measuring) return -1;
    this.measuring = true;
    let size = -1;
    try {
      size = this.measureValues(message);
    } finally {
      this.measuring = false;
      if (size < 0) this.clear();
    }
    return size;
  }

  private measureValues(message: unknown): number {
    if (typeof message !== "object" || message === null) return -1;
    const m = message as Record<string, unknown>;
    if (m["$typeName"] !== this.typeName) return -1;
    const unknown = m["$unknown"];
    if (unknown !== undefined && (!Array.isArray(unknown) || unknown.length > 0)) return -1;
    const fields = this.fields;
    const lengths = this.lengths;
    const values = this.values;
    let size = 0;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i] as FlatField;
      const v = m[f.name];
      values[i] = v;
      let n: number;
      switch (f.kind) {
        case Kind.bytes:
          if (!(v instanceof Uint8Array)) return -1;
          n = v.byteLength;
          if (n === 0) {
            lengths[i] = -1;
            continue;
          }
          lengths[i] = n;
          size += f.tag.length + varintSize(n) + n;
          continue;
        case Kind.string:
          if (typeof v !== "string") return -1;
          if (v.length === 0) {
            lengths[i] = -1;
            continue;
          }
          n = Buffer.byteLength(v, "utf8");
          lengths[i] = n;
          size += f.tag.length + varintSize(n) + n;
          continue;
        case Kind.bool:
          if (typeof v !== "boolean") return -1;
          lengths[i] = v ? 0 : -1;
          if (v) size += f.tag.length + 1;
          continue;
        case Kind.int32:
          if (typeof v !== "number" || !Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000)
            return -1;
          if (v === f.enumZero) {
            lengths[i] = -1;
            continue;
          }
          lengths[i] = 0;
          size += f.tag.length + (v < 0 ? 10 : varintSize(v));
          continue;
        case Kind.uint32:
          if (typeof v !== "number" || !Number.isInteger(v) || v > 0xffffffff || v < 0) return -1;
          if (v === 0) {
            lengths[i] = -1;
            continue;
          }
          lengths[i] = 0;
          size += f.tag.length + varintSize(v);
          continue;
      }
    }
    return size;
  }

  /**
   * Writes the message measured last into `buf` at `at` (which has room for
   * the measured size), and returns where it ends. Every byte is copied: a
   * caller may reuse its buffers once it has handed a message over.
   */
  write(_message: unknown, buf: Buffer, at: number): number {
    const fields = this.fields;
    const lengths = this.lengths;
    const values = this.values;
    for (let i = 0; i < fields.length; i++) {
      const n = lengths[i] as number;
      const value = values[i];
      values[i] = undefined;
      if (n < 0) continue;
      const f = fields[i] as FlatField;
      buf.set(f.tag, at);
      at += f.tag.length;
      switch (f.kind) {
        case Kind.bytes: {
          at = writeVarint(buf, at, n);
          buf.set(value as Uint8Array, at);
          at += n;
          break;
        }
        case Kind.string:
          at = writeVarint(buf, at, n);
          at += buf.write(value as string, at, n, "utf8");
          break;
        case Kind.bool:
          buf[at++] = 1;
          break;
        case Kind.int32: {
          const v = value as number;
          at = v < 0 ? writeNegativeInt32(buf, at, v) : writeVarint(buf, at, v);
          break;
        }
        case Kind.uint32:
          at = writeVarint(buf, at, value as number);
          break;
      }
    }
    return at;
  }
}
