/**
 * Why a plugin could not be started or used. Every failure a user can cause
 * maps to one kind, so that programs can branch on `error.kind` while people
 * read `error.message`, which always names the cause and what to check.
 */
export type PluginErrorKind =
  /** The command could not be spawned (not found, not executable). */
  | "spawn-failed"
  /** The plugin refused to start: it is not a plugin, or its cookie differs. */
  | "cookie-mismatch"
  /** The plugin exited before it completed the handshake. */
  | "exited-before-handshake"
  /** The plugin did not complete the handshake within the start timeout. */
  | "handshake-timeout"
  /** The first stdout line was not a handshake line at all. */
  | "unexpected-output"
  /** The handshake line had the right shape but a bad field. */
  | "malformed-handshake"
  /** The two sides share no protocol version. */
  | "version-mismatch"
  /** The plugin announced a wire protocol this host cannot speak. */
  | "unsupported-protocol"
  /** The endpoint does not speak the connect-plugin protocol. */
  | "not-a-plugin-server"
  /** Nothing answered at the endpoint (refused, reset, TLS failure, DNS). */
  | "unreachable"
  /** The plugin does not provide the named plugin that was dispensed. */
  | "unknown-plugin"
  /** The client is not started, or already closed. */
  | "not-running"
  /** The configuration given to the host or the plugin is invalid. */
  | "invalid-config";

/**
 * The error type for everything that goes wrong around a plugin's lifecycle.
 * Errors of calls into a running plugin are ConnectErrors, as with any
 * Connect client; those raised because the plugin died carry Code.Unavailable.
 */
export class PluginError extends Error {
  override readonly name = "PluginError";
  /** What went wrong, for programs. */
  readonly kind: PluginErrorKind;
  /** The last lines the plugin wrote to stderr, when it is a subprocess. */
  readonly stderrTail: string | undefined;

  constructor(
    kind: PluginErrorKind,
    message: string,
    options: { cause?: unknown; stderrTail?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.stderrTail = options.stderrTail;
  }
}
