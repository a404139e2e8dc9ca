import { PluginServer } from "../../plugin/plugin-server.js";
import { createInProcessTransport } from "../../transport/client-transport.js";
import { createDirectTransport } from "../../transport/direct.js";
import { CallGuard } from "../call-guard.js";
import type { InProcessSource } from "../sources.js";
import type { Connector } from "./connector.js";

/**
 * Runs the plugin's definition in the host's process: handed messages as
 * they are ("direct"), or through the Connect protocol in memory
 * ("serialize").
 */
export const connectInProcess: Connector<InProcessSource> = (source, context) => {
  const server = new PluginServer(source.definition, {
    gracePeriodMs: context.gracePeriodMs,
    log: (level, message, fields = {}) =>
      context.logger.log({
        level,
        message,
        plugin: context.name,
        source: "in-process",
        fields,
        time: new Date(),
      }),
  });
  // Nothing between host and plugin can break in process: every error
  // is the plugin's own, so the guard never rewrites one.
  const guard = new CallGuard(
    context.label,
    () => false,
    undefined,
    false,
    source.mode === "serialize",
  );
  // The plugin's own interceptors run where serve() would put them: before
  // the call tracker, around the implementation.
  const plugin = {
    routes: server.routes,
    routerOptions: {
      ...server.routerOptions,
      interceptors: [...(source.interceptors ?? []), ...server.routerOptions.interceptors],
    },
  };
  const transport = (
    source.mode === "serialize" ? createInProcessTransport : createDirectTransport
  )(plugin, { interceptors: [...context.interceptors, guard.interceptor] });
  return Promise.resolve({ transport, guard, process: undefined, server });
};
