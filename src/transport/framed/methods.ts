import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  createMethodImplSpec,
  createServiceImplSpec,
  type ConnectRouter,
  type MethodImplSpec,
} from "@connectrpc/connect";

/** One method a server can dispatch to, by its path "/package.Service/Method". */
export interface MethodEntry {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly spec: MethodImplSpec;
}

/**
 * Collects the implementations that a `routes` function registers, keyed by
 * path, without building HTTP handlers: the framed server and the direct
 * in-process transport call them as they are.
 */
export function collectMethods(routes: (router: ConnectRouter) => void): Map<string, MethodEntry> {
  const methods = new Map<string, MethodEntry>();
  const router: ConnectRouter = {
    handlers: [],
    service(service, implementation) {
      const spec = createServiceImplSpec(service, implementation);
      for (const method of service.methods) {
        const methodSpec = spec.methods[method.localName];
        if (methodSpec === undefined) continue;
        methods.set(`/${service.typeName}/${method.name}`, { service, method, spec: methodSpec });
      }
      return router;
    },
    rpc(method, impl) {
      methods.set(`/${method.parent.typeName}/${method.name}`, {
        service: method.parent,
        method,
        spec: createMethodImplSpec(method, impl),
      });
      return router;
    },
  };
  routes(router);
  return methods;
}
