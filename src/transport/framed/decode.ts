import {
  create,
  fromBinary,
  mergeFromBinary,
  type DescMessage,
  type MessageShape,
} from "@bufbuild/protobuf";

/** Makes a zero message of one schema; undefined: use fromBinary. */
type ZeroMaker = (() => Record<string, unknown>) | undefined;

const makers = new WeakMap<DescMessage, ZeroMaker>();

/**
 * `fromBinary(schema, bytes)`, the same message, about twice as fast for
 * small messages with `bytes` fields: the framed transport decodes every
 * message it receives with it.
 *
 * Why: protobuf-es builds each message's zero value field by field, and
 * the zero value of a `bytes` field is a new empty Uint8Array, which V8
 * makes slowly (the ArrayBuffer behind it): in a 16-byte server stream it
 * was a sixth of the host's CPU. Here a message whose schema keeps no state
 * on a prototype chain (proto3, and editions without explicit-presence
 * scalars) starts as a copy of one zero message made once per schema,
 * whose empty Uint8Arrays are shared (they have no elements to change);
 * lists, maps and oneofs get fresh ones. The bytes are then read into it
 * with protobuf-es' public mergeFromBinary, which on a zero message is what
 * fromBinary does. Other schemas (proto2, explicit presence, defaults) go
 * to fromBinary unchanged.
 */
export function decodeMessage<T extends DescMessage>(
  schema: T,
  bytes: Uint8Array,
): MessageShape<T> {
  let make = makers.get(schema);
  if (make === undefined && !makers.has(schema)) {
    make = zeroMaker(schema);
    makers.set(schema, make);
  }
  if (make === undefined) return fromBinary(schema, bytes);
  return mergeFromBinary(schema, make() as MessageShape<T>, bytes);
}

function zeroMaker(schema: DescMessage): ZeroMaker {
  const template = create(schema) as Record<string, unknown>;
  // A prototype of its own holds field defaults and tracks presence: leave those to protobuf-es.
  if (Object.getPrototypeOf(template) !== Object.prototype) return undefined;
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
  if (fresh.length === 0) return () => ({ ...template });
  return () => {
    const message: Record<string, unknown> = { ...template };
    for (const { name, kind } of fresh) {
      message[name] = kind === "oneof" ? { case: undefined } : kind === "list" ? [] : {};
    }
    return message;
  };
}
