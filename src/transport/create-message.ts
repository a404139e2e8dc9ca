import {
  create,
  isMessage,
  ScalarType,
  type DescField,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { scalarZeroValue } from "@bufbuild/protobuf/reflect";
import { Edition, FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

/** A proto3 message's fields when all are plain scalars or enums; null otherwise. */
type Plan = readonly (DescField & { fieldKind: "scalar" | "enum" })[] | null;

const plans = new WeakMap<DescMessage, Plan>();

/**
 * protobuf-es' `create(desc, init)`, the same message built with less work
 * for the commonest request: a proto3 message whose fields are all plain
 * scalars or enums (no oneof, message, list, map or `optional`). create()
 * first makes a zero message and then sets the fields from `init`; for a
 * bytes field the zero is a `new Uint8Array(0)` (about 0.25 µs in Node 20,
 * a tenth of an in-process call) that the init's value then replaces. Here
 * each field is set once, in create()'s order, to the init's value or, if
 * missing, to create()'s zero. Any other message goes to create() itself.
 */
export function createMessage<D extends DescMessage>(
  desc: D,
  init: MessageInitShape<D>,
): MessageShape<D> {
  if (isMessage(init, desc)) return init;
  let plan = plans.get(desc);
  if (plan === undefined) {
    plan = planOf(desc);
    plans.set(desc, plan);
  }
  if (plan === null || init === undefined) return create(desc, init);
  const values = init as Record<string, unknown>;
  const message: Record<string, unknown> = { $typeName: desc.typeName };
  for (const field of plan) {
    const value = values[field.localName];
    message[field.localName] =
      value == null
        ? zeroOf(field)
        : // create() turns an array given for bytes into a Uint8Array.
          field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES && Array.isArray(value)
          ? new Uint8Array(value as number[])
          : value;
  }
  return message as MessageShape<D>;
}

function planOf(desc: DescMessage): Plan {
  if (desc.file.edition !== Edition.EDITION_PROTO3) return null;
  const fields: (DescField & { fieldKind: "scalar" | "enum" })[] = [];
  for (const member of desc.members) {
    if (member.kind !== "field") return null;
    if (member.fieldKind !== "scalar" && member.fieldKind !== "enum") return null;
    if (member.presence !== FeatureSet_FieldPresence.IMPLICIT) return null;
    fields.push(member);
  }
  return fields;
}

/** A field's value in a zero message, as create() makes it. */
function zeroOf(field: DescField & { fieldKind: "scalar" | "enum" }): unknown {
  if (field.fieldKind === "enum") return field.getDefaultValue() ?? field.enum.values[0]?.number;
  const value = field.getDefaultValue();
  if (value !== undefined) return field.longAsString ? value.toString() : value;
  return scalarZeroValue(field.scalar, field.longAsString);
}
