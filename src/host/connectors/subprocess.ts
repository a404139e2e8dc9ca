import { randomBytes } from "node:crypto";
import { PluginError } from "../../protocol/errors.js";
import { createSocketTransport, type ClientTransport } from "../../transport/client-transport.js";
import { createFramedTransport } from "../../transport/framed/client.js";
import { createGoPluginTransport, type PeerTls } from "../../transport/goplugin-dial.js";
import { autoMtlsForLaunch } from "../auto-mtls-launch.js";
import { CallGuard } from "../call-guard.js";
import { PluginProcess } from "../launcher.js";
import type { SubprocessSource } from "../sources.js";
import type { Connector } from "./connector.js";

/**
 * Launches the plugin as a child process, reads its handshake line, and
 * connects with the transport it announced (framed, Connect or gRPC over
 * its socket, mutual TLS with AutoMTLS), every call carrying the launch
 * token.
 */
export const connectSubprocess: Connector<SubprocessSource> = async (source, context) => {
  const launchToken = randomBytes(32).toString("base64url");
  const mtls = autoMtlsForLaunch(source.autoMTLS);
  const proc = await PluginProcess.launch({
    command: source.command,
    args: source.args,
    env: { ...source.env, ...mtls.env },
    ...(source.cwd !== undefined && { cwd: source.cwd }),
    handshake: context.handshake,
    hostVersions: [...context.hostVersions],
    // Launching is the first step of start(): the whole timeout is left.
    startTimeoutMs: context.startTimeoutMs,
    logger: context.logger,
    name: context.name,
    label: context.label,
    launchToken,
    signal: context.signal,
    ...(source.transports !== undefined && { transports: source.transports }),
    ...(source.limits !== undefined && { limits: source.limits }),
  });
  context.launched(proc);
  const label = context.label;
  const line = proc.handshakeLine;
  if (line.protocol !== "connect" && line.protocol !== "grpc" && line.protocol !== "framed") {
    await proc.kill();
    throw new PluginError(
      "unsupported-protocol",
      `plugin ${label} speaks the unsupported protocol "${line.protocol}"; ` +
        `connect-plugin hosts speak "connect" and "grpc" (go-plugin's net/rpc is not supported)`,
    );
  }
  let tls: PeerTls | undefined;
  try {
    tls = mtls.peer(line, label);
  } catch (error) {
    await proc.kill();
    throw error;
  }
  // The guard asks the transport (created after it) whether its
  // connection broke; the closure only runs once calls are made.
  // The framed transport fails its calls on close itself (see CallGuard).
  const guard: CallGuard = new CallGuard(
    label,
    () => transport.isBroken(),
    proc,
    true,
    line.protocol !== "framed",
  );
  // User interceptors run first, so that the guard judges only errors
  // from the wire; the token is set after them by the transport, on the
  // wire, so that they never see it (framed: in each call's open frame;
  // HTTP/2: over the request's headers). No interceptor of its own: with
  // the guard alone, HTTP/2 unary calls take the runner's lean path.
  const interceptors = [...context.interceptors, guard.interceptor];
  const callHeaders = [["authorization", bearer(launchToken)]] as const;
  const protocol = line.protocol === "grpc" ? ("grpc" as const) : ("connect" as const);
  const transport: ClientTransport =
    line.protocol === "framed"
      ? createFramedTransport(line, {
          interceptors,
          callHeaders,
          ...(tls !== undefined && {
            tls: { ca: tls.peerCertPem, cert: tls.certPem, key: tls.keyPem },
          }),
        })
      : tls === undefined
        ? createSocketTransport(line, { protocol, interceptors, callHeaders })
        : createGoPluginTransport(line, { protocol, interceptors, tls, callHeaders });
  proc.onExit((exit) => context.exited(exit, transport));
  return { transport, guard, process: proc, server: undefined };
};

/** The authorization header's value for a launch token. */
function bearer(token: string): string {
  return `Bearer ${token}`;
}
