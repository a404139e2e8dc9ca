import { ManagementError } from "../manifest/errors.js";

/** A parsed OCI reference: `registry/repository[:tag][@digest]`. */
export interface OciReference {
  /** `host[:port]`. */
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** True when `text` names a registry host rather than a repository's first part. */
function looksLikeHost(part: string): boolean {
  return part.includes(".") || part.includes(":") || part === "localhost";
}

/**
 * Parses an OCI reference. A reference without a registry host uses
 * `defaultRegistry`; one without a tag or digest uses `latest`. A malformed
 * digest, repository or tag is "invalid-config" (CLI exit 7: the input is
 * wrong, whatever the registry holds, and whether it names one or not); a
 * well-formed one with no registry at all is "not-found", as a bare name
 * nothing else resolves is.
 */
export function parseReference(text: string, defaultRegistry?: string): OciReference {
  let rest = text.replace(/^oci:\/\//, "");
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw new ManagementError(
        "invalid-config",
        `invalid OCI reference "${text}": bad digest "${digest}"`,
      );
    }
  }
  const parts = rest.split("/");
  const registry =
    parts.length > 1 && looksLikeHost(parts[0] as string)
      ? (parts.shift() as string)
      : defaultRegistry;
  let last = parts.pop() ?? "";
  let tag: string | undefined;
  const colon = last.lastIndexOf(":");
  if (colon >= 0) {
    tag = last.slice(colon + 1);
    last = last.slice(0, colon);
  }
  const repository = [...parts, last].join("/");
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(repository)) {
    throw new ManagementError(
      "invalid-config",
      `invalid OCI reference "${text}": bad repository "${repository}"`,
    );
  }
  if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) {
    throw new ManagementError(
      "invalid-config",
      `invalid OCI reference "${text}": bad tag "${tag}"`,
    );
  }
  // Last: a malformed reference is that, registry or not.
  if (registry === undefined) {
    throw new ManagementError(
      "not-found",
      `OCI reference "${text}" names no registry, and no default registry is configured`,
    );
  }
  return {
    registry,
    repository,
    tag: tag ?? (digest === undefined ? "latest" : undefined),
    digest,
  };
}

/** The reference as text. */
export function formatReference(ref: OciReference): string {
  return (
    `${ref.registry}/${ref.repository}` +
    (ref.tag !== undefined ? `:${ref.tag}` : "") +
    (ref.digest !== undefined ? `@${ref.digest}` : "")
  );
}
