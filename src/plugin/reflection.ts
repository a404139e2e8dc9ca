import {
  create,
  toBinary,
  type DescExtension,
  type DescFile,
  type DescService,
} from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionResponseSchema as ResponseV1,
  type ServerReflectionRequest as RequestV1,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionResponseSchema as ResponseV1alpha,
  type ServerReflectionRequest as RequestV1alpha,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The answer to one request, as plain values that fit both versions' messages. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * gRPC server reflection, `grpc.reflection.v1` and (for older tools such as
 * earlier grpcurl releases) `grpc.reflection.v1alpha`, for every service the
 * router serves: list_services, file_by_filename, file_containing_symbol,
 * file_containing_extension and all_extension_numbers_of_type, answered from
 * the descriptors protoc-gen-es embeds in the generated code. A file comes
 * with those of its dependencies not yet sent on the stream, as grpc-go
 * does. Register it after the plugin's own services: it lists what the
 * router holds when the first request arrives.
 */
export function reflectionRoutes(router: ConnectRouter): void {
  let index: DescriptorIndex | undefined;
  const indexOf = (): DescriptorIndex =>
    (index ??= new DescriptorIndex(router.handlers.map((h) => h.service)));
  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(ResponseV1, respond(indexOf(), req, sent));
      }
    },
  });
  router.service(ServerReflectionV1alpha, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(ResponseV1alpha, respond(indexOf(), req, sent));
      }
    },
  });
}

function respond<R extends RequestV1 | RequestV1alpha>(
  index: DescriptorIndex,
  req: R,
  sent: Set<string>,
): { validHost: string; originalRequest: R; messageResponse: Answer } {
  return { validHost: req.host, originalRequest: req, messageResponse: answer(index, req, sent) };
}

function answer(
  index: DescriptorIndex,
  req: RequestV1 | RequestV1alpha,
  sent: Set<string>,
): Answer {
  const ask = req.messageRequest;
  switch (ask.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.files.get(ask.value), sent, `file not found: ${ask.value}`);
    case "fileContainingSymbol":
      return files(index.symbols.get(ask.value), sent, `symbol not found: ${ask.value}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = ask.value;
      const ext = index.extensionsOf(containingType).find((e) => e.number === extensionNumber);
      return files(ext?.file, sent, `extension not found: ${extensionNumber} of ${containingType}`);
    }
    case "allExtensionNumbersOfType": {
      if (!index.symbols.has(ask.value)) return notFound(`type not found: ${ask.value}`);
      return {
        case: "allExtensionNumbersResponse",
        value: {
          baseTypeName: ask.value,
          extensionNumber: index.extensionsOf(ask.value).map((e) => e.number),
        },
      };
    }
    default:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
      };
  }
}

/** The file and its dependencies not yet sent, as serialized FileDescriptorProtos. */
function files(file: DescFile | undefined, sent: Set<string>, missing: string): Answer {
  if (file === undefined) return notFound(missing);
  const out: Uint8Array[] = [];
  const add = (f: DescFile, always: boolean): void => {
    if (sent.has(f.proto.name) && !always) return;
    sent.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) add(dep, false);
  };
  add(file, true);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
}

function notFound(message: string): Answer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } };
}

/** The files behind a set of services, by file name and by every symbol they define. */
class DescriptorIndex {
  readonly services: string[];
  readonly files = new Map<string, DescFile>();
  readonly symbols = new Map<string, DescFile>();
  private readonly extensions = new Map<string, DescExtension[]>();

  constructor(services: readonly DescService[]) {
    this.services = [...new Set(services.map((s) => s.typeName))].sort();
    for (const s of services) this.add(s.file);
  }

  extensionsOf(typeName: string): readonly DescExtension[] {
    return this.extensions.get(typeName) ?? [];
  }

  private add(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      this.symbols.set(type.typeName, file);
      if (type.kind === "service") {
        for (const m of type.methods) this.symbols.set(`${type.typeName}.${m.name}`, file);
      } else if (type.kind === "extension") {
        const list = this.extensions.get(type.extendee.typeName) ?? [];
        list.push(type);
        this.extensions.set(type.extendee.typeName, list);
      }
    }
    for (const dep of file.dependencies) this.add(dep);
  }
}
