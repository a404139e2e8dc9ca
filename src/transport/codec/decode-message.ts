import {
  fromBinary,
  mergeFromBinary,
  type DescMessage,
  type MessageShape,
} from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import { bytesNames, Kind, shapeOf } from "./flat-schema.js";

/** Makes a zero message of one schema; undefined: use fromBinary. */
type ZeroMaker = ((bytes: Uint8Array) => Record<string, unknown>) | undefined;

/**
 * Gives each bytes field of `message` that still holds the template's
 * shared empty Uint8Array one of its own, as fromBinary would: a caller may
 * transfer (detach) a message's buffers, which must not reach other
 * messages. Only unset bytes fields pay for a new array.
 */
function ownEmptyBytes(
  message: Record<string, unknown>,
  template: Record<string, unknown>,
  names: readonly string[],
): void {
  for (const name of names) {
    if (message[name] === template[name]) message[name] = new Uint8Array(0);
  }
}

const makers = new WeakMap<DescMessage, ZeroMaker>();
const flats = new WeakMap<DescMessage, FlatDecoder | undefined>();

/**
 * `fromBinary(schema, bytes)`, the same message, about twice as fast for
 * small messages with `bytes` fields: the framed transport decodes every
 * message it receives with it, the HTTP/2 unary path every response.
 *
 * Why: protobuf-es builds each message's zero value field by field, and
 * the zero value of a `bytes` field is a new empty Uint8Array, which V8
 * makes slowly (the ArrayBuffer behind it): in a 16-byte server stream it
 * was a sixth of the host's CPU. Here a message whose schema keeps no state
 * on a prototype chain (proto3, and editions without explicit-presence
 * scalars) starts as a copy of one zero message made once per schema,
 * whose empty Uint8Arrays are shared while decoding (a bytes field left
 * unset gets one of its own at the end: a caller may detach it); lists,
 * maps and oneofs get fresh ones. The bytes are then read into it
 * with protobuf-es' public mergeFromBinary, which on a zero message is what
 * fromBinary does. Other schemas (proto2, explicit presence, defaults) go
 * to fromBinary unchanged. `start` (default 0): the message is
 * `bytes.subarray(start)`, without making that view unless protobuf-es has
 * to read it (the lean gRPC path skips the envelope's 5 bytes this way).
 */
export function decodeMessage<T extends DescMessage>(
  schema: T,
  bytes: Uint8Array,
  start = 0,
): MessageShape<T> {
  let flat = flats.get(schema);
  if (flat === undefined && !flats.has(schema)) {
    flat = FlatDecoder.build(schema);
    flats.set(schema, flat);
  }
  if (flat !== undefined) {
    const message = flat.decode(bytes, start);
    if (message !== undefined) return message as MessageShape<T>;
  }
  if (start !== 0) bytes = bytes.subarray(start);
  let make = makers.get(schema);
  if (make === undefined && !makers.has(schema)) {
    make = zeroMaker(schema);
    makers.set(schema, make);
  }
  if (make === undefined) return fromBinary(schema, bytes);
  return make(bytes) as MessageShape<T>;
}

function zeroMaker(schema: DescMessage): ZeroMaker {
  const template = shapeOf(schema).template;
  // A prototype of its own holds field defaults and tracks presence: leave those to protobuf-es.
  if (template === undefined) return undefined;
  const fresh: { name: string; kind: "oneof" | "list" | "map" }[] = [];
  for (const member of schema.members) {
    if (member.kind === "oneof") fresh.push({ name: member.localName, kind: "oneof" });
    else if (member.fieldKind === "list") fresh.push({ name: member.localName, kind: "list" });
    else if (member.fieldKind === "map") fresh.push({ name: member.localName, kind: "map" });
    else if (member.fieldKind === "scalar") {
      const value = template[member.localName];
      // Only an empty Uint8Array may be shared (a default with bytes could be changed).
      if (value instanceof Uint8Array && value.length > 0) return undefined;
    }
  }
  const shared = bytesNames(template);
  return (bytes) => {
    const message: Record<string, unknown> = { ...template };
    for (const { name, kind } of fresh) {
      message[name] = kind === "oneof" ? { case: undefined } : kind === "list" ? [] : {};
    }
    mergeFromBinary(schema, message as MessageShape<DescMessage>, bytes);
    ownEmptyBytes(message, template, shared);
    return message;
  };
}

/**
 * Reads flat messages (the fields FlatEncoder writes: implicit presence,
 * bytes, string, bool, int32, uint32, enum; field numbers 1-15) into a
 * copy of the zero message, without protobuf-es' reader, reflection and
 * read context per message (about a third of the host's time per 16-byte
 * stream message after the zero-message copy above). Bytes fields are views
 * of the payload, as protobuf-es makes them. Anything else (an unknown field
 * number, another wire type, a varint or length past the end) gives
 * undefined: the caller decodes again with protobuf-es, which keeps unknown
 * fields and throws its own errors.
 */
class FlatDecoder {
  static build(schema: DescMessage): FlatDecoder | undefined {
    const { template, plain, kinds } = shapeOf(schema);
    if (template === undefined || plain === undefined || kinds === undefined) return undefined;
    const byNumber: (FlatField | undefined)[] = [];
    for (const [i, field] of plain.entries()) {
      const kind = kinds[i] as Kind;
      // Numbers above 15 take two-byte keys: such a field is read by protobuf-es.
      if (field.number <= 15) {
        byNumber[field.number] = { name: field.localName, kind, strict: field.utf8Validation };
      }
    }
    return new FlatDecoder(template, byNumber, bytesNames(template));
  }

  private constructor(
    private readonly template: Record<string, unknown>,
    private readonly byNumber: readonly (FlatField | undefined)[],
    private readonly shared: readonly string[],
  ) {}

  /** The message in `buf` from `start` on (a view the caller need not make). */
  decode(buf: Uint8Array, start: number): Record<string, unknown> | undefined {
    const message: Record<string, unknown> = { ...this.template };
    const end = buf.length;
    let pos = start;
    while (pos < end) {
      const key = buf[pos++] as number;
      if (key >= 0x80) return undefined;
      const field = this.byNumber[key >>> 3];
      if (field === undefined) return undefined;
      const wireType = key & 7;
      if (field.kind === Kind.bytes || field.kind === Kind.string) {
        if (wireType !== 2) return undefined;
        let len = 0;
        let shift = 0;
        let b: number;
        do {
          if (pos >= end || shift > 28) return undefined;
          b = buf[pos++] as number;
          len += (b & 0x7f) * 2 ** shift;
          shift += 7;
        } while (b >= 0x80);
        if (len > end - pos) return undefined;
        const value = buf.subarray(pos, pos + len);
        pos += len;
        message[field.name] =
          field.kind === Kind.bytes
            ? value
            : // As protobuf-es decodes strings: its text encoding, strict where the field asks.
              getTextEncoding().decodeUtf8(value, field.strict);
        continue;
      }
      if (wireType !== 0) return undefined;
      // A varint of up to 10 bytes: its low 32 bits (int32, uint32, enum), or whether its 64 bits are 0 (bool).
      let low = 0;
      let any = 0;
      let b = 0x80;
      let i = 0;
      for (; i < 10 && b >= 0x80; i++) {
        if (pos >= end) return undefined;
        b = buf[pos++] as number;
        if (i < 5) low |= (b & 0x7f) << (7 * i);
        any |= i < 9 ? b & 0x7f : b & 1;
      }
      if (b >= 0x80) return undefined;
      message[field.name] =
        field.kind === Kind.bool ? any !== 0 : field.kind === Kind.uint32 ? low >>> 0 : low | 0;
    }
    ownEmptyBytes(message, this.template, this.shared);
    return message;
  }
}

/** A field FlatDecoder reads: its property, kind, and whether its strings must be valid UTF-8. */
interface FlatField {
  readonly name: string;
  readonly kind: Kind;
  readonly strict: boolean;
}
