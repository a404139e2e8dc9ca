import type { HandshakeConfig } from "../../protocol/plugin-set.js";
import type { Logger, LogLevel, LogRecord } from "../../logging/logger.js";
import { parsePluginLine } from "../../logging/plugin-output.js";
import { PluginError } from "../../protocol/errors.js";
import { formatVersions } from "../../protocol/versions.js";
import { certificateFromHandshake, generateAutoMtlsCertificate } from "../../security/auto-mtls.js";
import type { PeerTls } from "../../transport/goplugin-dial.js";
import { PluginProcess } from "../launcher.js";
import type { ResourceLimits } from "../resource-limits.js";

/** The plugin command and how to start it, as GoPluginClient's options give them. */
export interface GoPluginCommand {
  /** go-plugin's HandshakeConfig: cookie and protocol version (default 1). */
  readonly handshake: HandshakeConfig;
  /** The plugin's executable and arguments (no shell). */
  readonly command: string;
  readonly args?: readonly string[];
  /** Extra environment variables for the plugin. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /**
   * go-plugin's AutoMTLS: make a throwaway certificate, pass it in
   * PLUGIN_CLIENT_CERT, and talk to the plugin over mutual TLS with the
   * certificate from its handshake line. Off by default, as in go-plugin.
   */
  readonly autoMTLS?: boolean;
  /**
   * Operating-system limits on the plugin process (rlimits), as for
   * `subprocess()`; none by default. An exit past one names the limit.
   */
  readonly limits?: ResourceLimits;
}

/** What launching a go-plugin plugin needs (GoPluginClient's options, resolved). */
export interface GoPluginLaunch extends GoPluginCommand {
  readonly hostVersions: readonly number[];
  readonly startTimeoutMs: number;
  readonly logger: Logger;
  readonly name: string;
  readonly label: string;
  /** Fired when the client is closed while starting. */
  readonly signal: AbortSignal;
  /** Told about the launched process at once, so its exit stays readable if the start fails. */
  readonly launched: (process: PluginProcess) => void;
}

/**
 * Launches a go-plugin plugin the way go-plugin's host does (the cookie,
 * PLUGIN_PROTOCOL_VERSIONS, with AutoMTLS a fresh PLUGIN_CLIENT_CERT), reads
 * its handshake line and checks it: gRPC, a version the host speaks, and a
 * certificate exactly when AutoMTLS is on. Resolves to the process and the
 * TLS to dial it with; a refused line kills the process.
 */
export async function launchGoPlugin(
  options: GoPluginLaunch,
): Promise<{ process: PluginProcess; tls: PeerTls | undefined }> {
  const own = options.autoMTLS === true ? generateAutoMtlsCertificate() : undefined;
  const proc = await PluginProcess.launch({
    command: options.command,
    args: options.args ?? [],
    env: {
      ...options.env,
      ...(own !== undefined && { PLUGIN_CLIENT_CERT: own.certPem }),
    },
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    handshake: options.handshake,
    hostVersions: [...options.hostVersions],
    startTimeoutMs: options.startTimeoutMs,
    logger: options.logger,
    stderrRecord: goPluginStderr(options.name),
    name: options.name,
    label: options.label,
    launchToken: "",
    signal: options.signal,
    goPlugin: true,
    ...(options.limits !== undefined && { limits: options.limits }),
  });
  options.launched(proc);
  try {
    return { process: proc, tls: checkLine(proc, own, options) };
  } catch (error) {
    await proc.kill(2_000);
    throw error;
  }
}

/** The TLS to dial the plugin with, from its handshake line; throws if the line is refused. */
function checkLine(
  proc: PluginProcess,
  own: { certPem: string; keyPem: string } | undefined,
  context: { readonly label: string; readonly hostVersions: readonly number[] },
): PeerTls | undefined {
  const label = context.label;
  const line = proc.handshakeLine;
  if (line.protocol === "netrpc") {
    throw new PluginError(
      "unsupported-protocol",
      `plugin ${label} speaks go-plugin's "netrpc" protocol, which connect-plugin does ` +
        `not support: serve it with GRPCServer: plugin.DefaultGRPCServer to speak "grpc"`,
    );
  }
  if (line.protocol !== "grpc") {
    throw new PluginError(
      "unsupported-protocol",
      `plugin ${label} announced the protocol "${line.protocol}", but a go-plugin ` +
        `host speaks only "grpc"; a connect-plugin plugin speaks "grpc" unless ` +
        `CONNECT_PLUGIN_TRANSPORTS is set (use PluginClient for its other transports)`,
    );
  }
  if (!context.hostVersions.includes(line.protocolVersion)) {
    throw new PluginError(
      "version-mismatch",
      `protocol version mismatch with plugin ${label}: the plugin speaks ` +
        `${formatVersions([line.protocolVersion])}, this host speaks ` +
        `${formatVersions(context.hostVersions)}`,
    );
  }
  // Field 7 only says the plugin *supports* multiplexing when
  // PLUGIN_MULTIPLEX_GRPC is set; this host never sets it (and the
  // launcher strips an inherited one), so, like go-plugin's host when it
  // did not ask, it ignores the field.
  if (own === undefined) {
    if (line.serverCert !== undefined) {
      throw new PluginError(
        "malformed-handshake",
        `plugin ${label} serves TLS (its handshake line carries a certificate) but ` +
          `AutoMTLS is off; turn on autoMTLS, or find what sets PLUGIN_CLIENT_CERT for it`,
      );
    }
    return undefined;
  }
  if (line.serverCert === undefined) {
    throw new PluginError(
      "malformed-handshake",
      `plugin ${label} sent no certificate in its handshake line although AutoMTLS is ` +
        `on; is it built with a go-plugin version older than 0.12, or does it ignore ` +
        `PLUGIN_CLIENT_CERT?`,
    );
  }
  let peerCertPem: string;
  try {
    peerCertPem = certificateFromHandshake(line.serverCert);
  } catch (error) {
    throw new PluginError("malformed-handshake", `plugin ${label}: ${String(error)}`);
  }
  return { certPem: own.certPem, keyPem: own.keyPem, peerCertPem };
}

/** go-plugin's level prefixes for plain stderr lines (the standard `log` package's convention). */
const PREFIX_LEVELS: ReadonlyArray<readonly [string, LogLevel]> = [
  ["[TRACE]", "trace"],
  ["[DEBUG]", "debug"],
  ["[INFO]", "info"],
  ["[WARN]", "warn"],
  ["[ERROR]", "error"],
];

/**
 * Reads a go-plugin plugin's stderr the way go-plugin's host does
 * (client.go, logStderr): an hclog JSON line becomes a structured record
 * (debug when it has no level); a plain line gets the level of its
 * `[TRACE]`..`[ERROR]` prefix, or debug; and from a plain line starting
 * "panic: " or "fatal error: " on, plain lines are errors, so that a Go
 * panic and its stack trace are never lost in debug output.
 */
function goPluginStderr(name: string): (line: string) => LogRecord {
  let inPanic = false;
  return (line) => {
    if (isJsonObject(line)) return parsePluginLine(line, name, "stderr", "debug");
    let level: LogLevel = "debug";
    const prefixed = PREFIX_LEVELS.find(([prefix]) => line.startsWith(prefix));
    if (prefixed !== undefined) level = prefixed[1];
    else if (/^(panic: |fatal error: )/.test(line)) inPanic = true;
    if (prefixed === undefined && inPanic) level = "error";
    return { ...parsePluginLine(line, name, "stderr", level), level };
  };
}

function isJsonObject(line: string): boolean {
  if (!line.startsWith("{")) return false;
  try {
    const parsed: unknown = JSON.parse(line);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed);
  } catch {
    return false;
  }
}
