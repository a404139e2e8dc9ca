import { PluginError } from "./errors.js";

/**
 * What a host needs to attach to a plugin it did not launch, in go-plugin's
 * ReattachConfig shape as Terraform's TF_REATTACH_PROVIDERS spells it in
 * JSON: `{"Protocol":"grpc","ProtocolVersion":1,"Pid":123,"Test":true,
 * "Addr":{"Network":"unix","String":"/tmp/…/plugin.sock"}}`. A plugin
 * started with CONNECT_PLUGIN_DEBUG=1 prints it as
 * `CONNECT_PLUGIN_REATTACH=<json>` on stdout.
 */
export interface ReattachConfig {
  /** "grpc" (go-plugin's; a connect-plugin server answers Connect there too). */
  readonly Protocol: "grpc" | "connect";
  readonly ProtocolVersion: number;
  readonly Pid: number;
  /** go-plugin's flag for a plugin the host must not kill: always true here. */
  readonly Test: boolean;
  readonly Addr: { readonly Network: "unix" | "tcp"; readonly String: string };
}

/** The environment variable a debug-mode plugin prints, and a host may read. */
export const REATTACH_ENV = "CONNECT_PLUGIN_REATTACH";

/** Parses a reattach config (the JSON, or the whole `CONNECT_PLUGIN_REATTACH=…` line). */
export function parseReattach(text: string): ReattachConfig {
  const json = text.trim().startsWith(`${REATTACH_ENV}=`)
    ? text.trim().slice(REATTACH_ENV.length + 1)
    : text.trim();
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new PluginError(
      "invalid-config",
      `reattach config is not JSON: ${JSON.stringify(json.slice(0, 80))}`,
    );
  }
  const c = value as Partial<ReattachConfig> | null;
  const problems: string[] = [];
  if (c === null || typeof c !== "object") problems.push("must be a JSON object");
  else {
    if (c.Protocol !== "grpc" && c.Protocol !== "connect") {
      problems.push(`Protocol must be "grpc" or "connect", got ${JSON.stringify(c.Protocol)}`);
    }
    if (!Number.isInteger(c.ProtocolVersion) || (c.ProtocolVersion ?? 0) < 1) {
      problems.push("ProtocolVersion must be a positive integer");
    }
    if (!Number.isInteger(c.Pid) || (c.Pid ?? 0) < 1)
      problems.push("Pid must be a positive integer");
    const addr = c.Addr;
    if (addr === undefined || (addr.Network !== "unix" && addr.Network !== "tcp")) {
      problems.push(
        'Addr.Network must be "unix" or "tcp" (net/rpc and other networks are not supported)',
      );
    } else if (typeof addr.String !== "string" || addr.String === "") {
      problems.push("Addr.String must be the socket path or host:port");
    }
  }
  if (problems.length > 0) {
    throw new PluginError("invalid-config", `invalid reattach config: ${problems.join("; ")}`);
  }
  return c as ReattachConfig;
}
