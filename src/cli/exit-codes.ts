import type { ManagementErrorKind } from "../manifest/errors.js";

/**
 * The CLI's exit codes (docs/cli.md). Scripts branch on these; the message
 * on stderr (or `error` in --json output) says the rest.
 */
export const EXIT = {
  ok: 0,
  /** A bug or an unexpected failure. */
  internal: 1,
  /** Bad command line: unknown command or option, missing argument. */
  usage: 2,
  /** A digest or signature did not match, the plugin is unsigned, or an artifact is unsafe. */
  verification: 3,
  /** No such plugin, file, tag or blob. */
  notFound: 4,
  /** The registry (or `status --from`'s page) refused (401/403), failed (5xx), or could not be reached. */
  registry: 5,
  /** A local file operation failed (full disk, permissions). */
  io: 6,
  /** An invalid manifest, configuration or lockfile; a malformed option value or OCI reference. */
  invalid: 7,
  /** No entrypoint for this platform, or incompatible with this host. */
  platform: 8,
  /** `conformance`: a required check failed. */
  conformance: 9,
} as const;

export function exitCodeFor(kind: ManagementErrorKind): number {
  switch (kind) {
    case "verification-failed":
      return EXIT.verification;
    case "not-found":
      return EXIT.notFound;
    case "registry":
      return EXIT.registry;
    case "io":
      return EXIT.io;
    case "invalid-manifest":
    case "invalid-config":
      return EXIT.invalid;
    case "unsupported-platform":
    case "incompatible":
      return EXIT.platform;
    case "restart-budget-exhausted":
    case "stopped":
    case "upgrade-failed":
      return EXIT.internal;
  }
}
