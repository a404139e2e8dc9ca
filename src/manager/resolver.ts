import { lstatSync, statSync, type Stats } from "node:fs";
import { ManagementError } from "../manifest/errors.js";
import { parseReference, type OciReference } from "../oci/reference.js";

/** Where an install comes from, in the order they are tried. */
export type Resolved =
  | { readonly kind: "directory"; readonly path: string }
  | { readonly kind: "archive"; readonly path: string }
  | {
      readonly kind: "oci";
      readonly ref: OciReference;
      readonly via: "explicit" | "default-registry";
    }
  | { readonly kind: "builtin"; readonly name: string };

/**
 * Resolves what the user named, as seed 001 asks: a local path first (a
 * plugin directory or a `.tar.gz`), then an explicit OCI reference (one that
 * names a registry host), then the name in the default registry, and last a
 * built-in (in-process) implementation the host registered under that name.
 */
export function resolveSource(
  text: string,
  options: {
    defaultRegistry?: string;
    repositoryPrefix?: string;
    builtins?: readonly string[];
  } = {},
): Resolved {
  if (isLocal(text)) {
    const stat = localStat(text);
    if (stat.isDirectory()) return { kind: "directory", path: text };
    if (isArchive(text)) return { kind: "archive", path: text };
    throw new ManagementError(
      "not-found",
      `${text} is neither a plugin directory nor a .tar.gz archive`,
    );
  }
  const first = text.replace(/^oci:\/\//, "").split("/")[0] ?? "";
  const explicit =
    text.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (explicit) return { kind: "oci", ref: parseReference(text), via: "explicit" };
  if (options.defaultRegistry !== undefined) {
    const prefix =
      options.repositoryPrefix === undefined
        ? ""
        : `${options.repositoryPrefix.replace(/\/$/, "")}/`;
    return {
      kind: "oci",
      ref: parseReference(`${options.defaultRegistry}/${prefix}${text}`),
      via: "default-registry",
    };
  }
  const name = text.split(":")[0] ?? text;
  if (options.builtins?.includes(name) === true) return { kind: "builtin", name };
  throw new ManagementError(
    "not-found",
    `cannot find plugin "${text}": no such path, not an OCI reference (registry/repository[:tag]), ` +
      `no default registry configured, and no built-in plugin of that name`,
  );
}

/**
 * Resolution as a process, with the in-process fallback seed 001 asks for:
 * a local path, then an explicit OCI reference, then the name in the
 * default registry, and, when the registry answers that it has no such
 * name (`exists` resolves false, or throws a "not-found" ManagementError),
 * a built-in of that name. Other registry errors (unreachable, 401) are not
 * a reason to fall back silently: they are thrown. `exists` is typically
 * `(ref) => client.getManifest(ref.repository, ref.tag ?? "latest").then(() => true)`.
 */
export async function resolveWithFallback(
  text: string,
  options: {
    defaultRegistry?: string;
    repositoryPrefix?: string;
    builtins?: readonly string[];
    exists: (ref: OciReference) => Promise<boolean>;
  },
): Promise<Resolved> {
  const { builtins, exists, ...rest } = options;
  const name = text.split(":")[0] ?? text;
  const builtin = builtins?.includes(name) === true;
  let resolved: Resolved;
  try {
    resolved = resolveSource(text, rest);
  } catch (e) {
    if (builtin) return { kind: "builtin", name };
    throw e;
  }
  if (resolved.kind !== "oci" || resolved.via !== "default-registry" || !builtin) return resolved;
  let found: boolean;
  try {
    found = await exists(resolved.ref);
  } catch (e) {
    if (e instanceof ManagementError && e.kind === "not-found") found = false;
    else throw e;
  }
  return found ? resolved : { kind: "builtin", name };
}

/**
 * Whether `text` can only be a local path: it starts with `/`, `./`, `../` or
 * `~/`, is `.` or `..`, or names a `.tar.gz` archive. Such a text is never
 * tried as an OCI reference (`./kv` would otherwise name the registry ".").
 */
export function looksLikePath(text: string): boolean {
  return /^(\.{1,2}|~)?\//.test(text) || text === "." || text === ".." || isArchive(text);
}

/** Whether `text` names a local path: one that exists (even as a dangling link), or looks like one. */
export function isLocal(text: string): boolean {
  return lstatSync(text, { throwIfNoEntry: false }) !== undefined || looksLikePath(text);
}

/**
 * A local path's stat, or a "not-found" error naming the path: missing, or a
 * symbolic link whose target is missing or loops.
 */
export function localStat(path: string): Stats {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const link = lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true;
    const why =
      code === "ELOOP"
        ? "is a symbolic link loop"
        : link
          ? "is a symbolic link to a missing file"
          : "does not exist";
    throw new ManagementError("not-found", `${path} ${why}`, { cause: e });
  }
}

/** Whether a path names a plugin archive (`.tar.gz` or `.tgz`). */
export function isArchive(path: string): boolean {
  return /\.(tar\.gz|tgz)$/.test(path);
}
