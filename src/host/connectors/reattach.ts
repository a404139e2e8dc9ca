import { isAlive } from "../../protocol/reattach-process.js";
import { PluginError } from "../../protocol/errors.js";
import { createSocketTransport } from "../../transport/client-transport.js";
import { CallGuard } from "../call-guard.js";
import type { ReattachSource } from "../sources.js";
import type { Connector } from "./connector.js";

/**
 * Attaches to a plugin that is already running, started by hand in debug
 * mode (CONNECT_PLUGIN_DEBUG=1) or by another host, from its reattach
 * config (go-plugin's ReattachConfig). Nothing is launched and the host
 * owns no process: close() only disconnects, the plugin keeps running.
 * The Handshake, dispense and health are the client's, as for any source.
 */
export const connectReattach: Connector<ReattachSource> = (source, context) => {
  const { config } = source;
  if (!isAlive(config.Pid)) {
    return Promise.reject(
      new PluginError(
        "unreachable",
        `cannot reattach to plugin pid ${config.Pid} at ${config.Addr.String}: no such process`,
      ),
    );
  }
  const guard: CallGuard = new CallGuard(context.label, () => transport.isBroken());
  const transport = createSocketTransport(
    { network: config.Addr.Network, address: config.Addr.String },
    {
      protocol: config.Protocol === "grpc" ? "grpc" : "connect",
      interceptors: [...context.interceptors, guard.interceptor],
    },
  );
  return Promise.resolve({ transport, guard, process: undefined, server: undefined });
};
