import {
  create,
  isMessage,
  ScalarType,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { shapeOf } from "./codec/flat-schema.js";

/**
 * protobuf-es' `create(desc, init)`, the same message built with less work
 * for the commonest request: a message whose fields are all plain scalars
 * or enums with implicit presence (no oneof, message, list, map or
 * `optional`; see shapeOf). create() first makes a zero message and then
 * sets the fields from `init`; for a bytes field the zero is a
 * `new Uint8Array(0)` (about 0.25 µs in Node 20, a tenth of an in-process
 * call) that the init's value then replaces. Here each field is set once,
 * in create()'s order, to the init's value or, if missing, to create()'s
 * zero (taken from the schema's zero message, made once; a bytes field
 * gets an empty array of its own). Any other message goes to create().
 */
export function createMessage<D extends DescMessage>(
  desc: D,
  init: MessageInitShape<D>,
): MessageShape<D> {
  if (isMessage(init, desc)) return init;
  const { template, plain } = shapeOf(desc);
  if (template === undefined || plain === undefined || init === undefined)
    return create(desc, init);
  const values = init as Record<string, unknown>;
  const message: Record<string, unknown> = { $typeName: desc.typeName };
  for (const field of plain) {
    const name = field.localName;
    const value = values[name];
    const bytes = field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES;
    message[name] =
      value == null
        ? bytes
          ? new Uint8Array(0)
          : template[name]
        : // create() turns an array given for bytes into a Uint8Array.
          bytes && Array.isArray(value)
          ? new Uint8Array(value as number[])
          : value;
  }
  return message as MessageShape<D>;
}
