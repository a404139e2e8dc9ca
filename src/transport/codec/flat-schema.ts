import { create, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

/** How one field of a flat message is written and read (FlatEncoder, FlatDecoder). */
export const Kind = { bytes: 0, string: 1, bool: 2, int32: 3, uint32: 4 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** A field of a plain message: a scalar or enum with implicit presence, outside any oneof. */
export type PlainField = DescField & { fieldKind: "scalar" | "enum" };

/**
 * What the fast paths of this project may do with one schema's messages,
 * decided once per schema: createMessage (building a request), the flat
 * codec (FlatEncoder, FlatDecoder) and decodeMessage (a zero message copied
 * from a template). Anything they cannot do exactly as protobuf-es goes to
 * protobuf-es itself.
 */
export interface SchemaShape {
  /**
   * create(schema) once, when it is a plain object (no prototype chain,
   * which protobuf-es uses for field defaults and explicit presence); its
   * empty Uint8Arrays must never reach a caller (copy, then replace them).
   */
  readonly template: Record<string, unknown> | undefined;
  /**
   * The fields, in declaration order, when the template is plain and every
   * member is a PlainField (no oneof, message, list or map field); else
   * undefined.
   */
  readonly plain: readonly PlainField[] | undefined;
  /**
   * The codec's kind of each of `plain`'s fields, when every one has one
   * (bytes, string, bool, int32, uint32, open enum): the message is "flat";
   * else undefined.
   */
  readonly kinds: readonly Kind[] | undefined;
}

const shapes = new WeakMap<DescMessage, SchemaShape>();

/** The shape of `schema` (see SchemaShape), computed on first use. */
export function shapeOf(schema: DescMessage): SchemaShape {
  let shape = shapes.get(schema);
  if (shape === undefined) {
    shape = build(schema);
    shapes.set(schema, shape);
  }
  return shape;
}

function build(schema: DescMessage): SchemaShape {
  const made = create(schema) as Record<string, unknown>;
  // A prototype of its own holds field defaults and tracks presence: leave those to protobuf-es.
  const template = Object.getPrototypeOf(made) === Object.prototype ? made : undefined;
  let plain: PlainField[] | undefined = template === undefined ? undefined : [];
  let kinds: Kind[] | undefined = plain === undefined ? undefined : [];
  for (const member of schema.members) {
    if (plain === undefined) break;
    if (
      member.kind !== "field" ||
      (member.fieldKind !== "scalar" && member.fieldKind !== "enum") ||
      member.presence !== FeatureSet_FieldPresence.IMPLICIT
    ) {
      plain = kinds = undefined;
      break;
    }
    plain.push(member);
    const kind = kindOf(member);
    if (kind === undefined) kinds = undefined;
    else kinds?.push(kind);
  }
  return { template, plain, kinds };
}

/** The codec's kind of a plain field, or undefined: the flat codec leaves it to protobuf-es. */
function kindOf(field: PlainField): Kind | undefined {
  // A closed enum's unknown values go to $unknown (protobuf-es' readField): not read here.
  if (field.fieldKind === "enum") return field.enum.open ? Kind.int32 : undefined;
  switch (field.scalar) {
    case ScalarType.BYTES:
      return Kind.bytes;
    case ScalarType.STRING:
      return Kind.string;
    case ScalarType.BOOL:
      return Kind.bool;
    case ScalarType.INT32:
      return Kind.int32;
    case ScalarType.UINT32:
      return Kind.uint32;
    default:
      return undefined;
  }
}

/** The properties of `template` that hold a (shared, empty) Uint8Array. */
export function bytesNames(template: Record<string, unknown>): string[] {
  return Object.keys(template).filter((name) => template[name] instanceof Uint8Array);
}
