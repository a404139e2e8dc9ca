import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { methodPath } from "../call-support.js";
import {
  createMethodImplSpec,
  createServiceImplSpec,
  type ConnectRouter,
  type MethodImplSpec,
} from "@connectrpc/connect";

/** The options a service or method may be registered with (ConnectRouter's third argument). */
export type RegistrationOptions = NonNullable<Parameters<ConnectRouter["rpc"]>[2]>;

/** One method a server can dispatch to, by its path "/package.Service/Method". */
export interface MethodEntry {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly spec: MethodImplSpec;
}

/**
 * Collects the implementations that a `routes` function registers, keyed by
 * path, without building HTTP handlers: the framed server and the direct
 * in-process transport call them as they are. With `inner`, every
 * registration also goes to that router (the HTTP adapter's), and one made
 * with options of its own is left out (only `inner` applies them).
 * `noteOptions` is told each method's registration options (undefined for
 * none), in order, so that a caller can follow what `inner` applies.
 */
export function collectMethods(
  routes: (router: ConnectRouter) => void,
  inner?: ConnectRouter,
  noteOptions?: (method: DescMethod, options: RegistrationOptions | undefined) => void,
): Map<string, MethodEntry> {
  const methods = new Map<string, MethodEntry>();
  const router: ConnectRouter = {
    get handlers() {
      return inner?.handlers ?? [];
    },
    service(service, implementation, options) {
      inner?.service(service, implementation, options);
      const spec = createServiceImplSpec(service, implementation);
      for (const method of service.methods) {
        const path = methodPath(method);
        const methodSpec = spec.methods[method.localName];
        if (methodSpec === undefined || options !== undefined) methods.delete(path);
        else methods.set(path, { service, method, spec: methodSpec });
        noteOptions?.(method, options);
      }
      return router;
    },
    rpc(method, impl, options) {
      inner?.rpc(method, impl, options);
      const path = methodPath(method);
      if (options !== undefined) methods.delete(path);
      else {
        methods.set(path, {
          service: method.parent,
          method,
          spec: createMethodImplSpec(method, impl),
        });
      }
      noteOptions?.(method, options);
      return router;
    },
  };
  routes(router);
  return methods;
}
