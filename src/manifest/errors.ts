/**
 * Why managing a plugin failed. Each kind maps to one CLI exit code (see
 * docs/cli.md), so that scripts can branch on the code while people read the
 * message, which always names the plugin, the file or the reference, and for
 * digests the expected and the actual value.
 */
export type ManagementErrorKind =
  /** The manifest does not match the schema, or is inconsistent. */
  | "invalid-manifest"
  /** A digest or a signature did not match, or the plugin is unsigned. */
  | "verification-failed"
  /** No plugin, file, tag or blob by that name. */
  | "not-found"
  /** The plugin has no entrypoint for this platform. */
  | "unsupported-platform"
  /** The registry refused us, failed, or the network did. */
  | "registry"
  /** Reading or writing local files failed (full disk, permissions). */
  | "io"
  /** The plugin is not compatible with this host or its configuration. */
  | "incompatible"
  /**
   * Input given to us is malformed or contradicts itself (CLI exit 7): the
   * configuration given to the plugin does not match its schema; the host's
   * settings (a plugins directory that is a file, a lockfile that is not
   * one, a second open() with other options); the CLI's options (--platform,
   * --cookie...) or an OCI reference (parseReference).
   */
  | "invalid-config"
  /** A supervised plugin crashed more often than its restart budget allows. */
  | "restart-budget-exhausted"
  /** The plugin was stopped or closed while a caller waited for it to start. */
  | "stopped"
  /** A new generation failed to start or to pass its health check; the old one keeps serving. */
  | "upgrade-failed";

/** The error type of manifests, signing, OCI distribution and the manager. */
export class ManagementError extends Error {
  override readonly name = "ManagementError";
  readonly kind: ManagementErrorKind;

  constructor(kind: ManagementErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
  }
}
