import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import semver from "semver";
import { parse as parseYaml } from "yaml";
import { ManagementError } from "./errors.js";
import { hostPlatform } from "./platform.js";
import { NODE_OPTIONS_ALLOWED, type Entrypoint, type PluginManifest } from "./types.js";
import { syntaxErrorText } from "./syntax-error.js";

let schema: Record<string, unknown> | undefined;
let validator: ValidateFunction | undefined;

/**
 * The published JSON Schema of manifests (schema/plugin-manifest.schema.json),
 * read on first use so that importing this module has no side effects.
 */
export function manifestSchema(): Record<string, unknown> {
  schema ??= JSON.parse(
    readFileSync(new URL("../../../schema/plugin-manifest.schema.json", import.meta.url), "utf8"),
  ) as Record<string, unknown>;
  return schema;
}

/** The schema's complaints about `value`, none when it conforms. */
function schemaErrors(value: unknown): ErrorObject[] {
  validator ??= new Ajv({ allErrors: true, strict: false }).compile(manifestSchema());
  // ajv sets `errors` whenever a validation fails.
  return validator(value) ? [] : (validator.errors as ErrorObject[]);
}

const NO_FILES =
  "files: lists no files; fill it in with " +
  "'connect-plugin sign <dir> --key <key> --update-files' (or 'connect-plugin init')";

/** Turns one ajv error into "field: problem", naming the field by its path. */
function describe(error: ErrorObject): string {
  let field = error.instancePath
    .split("/")
    .slice(1)
    .map((segment) => segment.replace(/~1/g, "/").replace(/~0/g, "~"))
    .join(".");
  const params = error.params as Record<string, unknown>;
  if (error.keyword === "required") {
    field =
      field === "" ? String(params.missingProperty) : `${field}.${String(params.missingProperty)}`;
    // Required by a kind (the schema's allOf branches).
    const kind = { goPlugin: "go-plugin", endpoint: "remote", cluster: "cluster" }[field];
    return kind === undefined
      ? `${field}: is required`
      : `${field}: is required for kind "${kind}"`;
  }
  if (error.keyword === "additionalProperties") {
    const extra = String(params.additionalProperty);
    return `${field === "" ? extra : `${field}.${extra}`}: is not a known field`;
  }
  if (error.keyword === "propertyNames") {
    return `${field}: has the key ${JSON.stringify(params.propertyName)}, which is not os/arch`;
  }
  // The only complaint about "files" itself is its type (its entries are "files.<path>").
  if (field === "files") return NO_FILES;
  if (
    field === "cluster.discovery" &&
    (error.keyword === "minProperties" || error.keyword === "maxProperties")
  ) {
    return `${field}: give exactly one of static, dnsSrv, kubernetes, etcd`;
  }
  if (error.keyword === "enum") {
    return `${field}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  }
  return `${field === "" ? "(manifest)" : field}: ${error.message ?? "is invalid"}`;
}

/**
 * Checks a parsed manifest against the schema and for consistency, and
 * returns it typed. Throws ManagementError("invalid-manifest") whose message
 * names every bad field by its path (`entrypoints.linux/amd64.file: ...`).
 */
export function validateManifest(value: unknown, where = "manifest"): PluginManifest {
  const schemaProblems = schemaErrors(value);
  if (schemaProblems.length > 0) {
    // An "if" error only says that a then/else branch failed; that
    // branch's own errors say what is wrong. A key's own pattern error is
    // said better by its propertyNames error.
    // The kind's requirements (allOf) come after the fields every manifest needs.
    const errors = schemaProblems
      .filter((e) => e.keyword !== "if" && !e.schemaPath.includes("/propertyNames/"))
      .sort(
        (a, b) =>
          Number(a.schemaPath.startsWith("#/allOf")) - Number(b.schemaPath.startsWith("#/allOf")),
      );
    const problems = [...new Set(errors.map(describe))];
    throw new ManagementError("invalid-manifest", `invalid ${where}: ${problems.join("; ")}`);
  }
  const problems = kindProblems(value as PluginManifest);
  if (problems.length > 0) {
    throw new ManagementError("invalid-manifest", `invalid ${where}: ${problems.join("; ")}`);
  }
  const manifest = withDefaults(value as PluginManifest);
  for (const path of Object.keys(manifest.files)) {
    const bad = unsafePath(path);
    if (bad !== undefined) problems.push(`files.${path}: ${bad}`);
  }
  for (const [platform, entry] of Object.entries(manifest.entrypoints)) {
    if (manifest.files[entry.file] === undefined) {
      problems.push(`entrypoints.${platform}.file: "${entry.file}" is not listed in files`);
    }
    problems.push(...nodeOptionsProblems(entry, `entrypoints.${platform}.nodeOptions`));
  }
  if (semver.validRange(manifest.hostVersions) === null) {
    problems.push(`hostVersions: "${manifest.hostVersions}" is not a semver range`);
  }
  if (manifest.configSchema !== undefined) {
    try {
      new Ajv({ strict: false }).compile(manifest.configSchema);
    } catch (e) {
      problems.push(`configSchema: is not a valid JSON Schema (${(e as Error).message})`);
    }
  }
  const names = manifest.plugins.map((p) => p.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) problems.push(`plugins: the name "${dup}" appears twice`);
  if (problems.length > 0) {
    throw new ManagementError("invalid-manifest", `invalid ${where}: ${problems.join("; ")}`);
  }
  return manifest;
}

/**
 * What each kind of plugin must and must not declare, beyond the schema
 * (which already requires entrypoints and files of launched kinds, and each
 * kind's own settings).
 */
function kindProblems(m: PluginManifest): string[] {
  const kind = m.kind ?? "subprocess";
  const problems: string[] = [];
  if (kind === "subprocess" || kind === "go-plugin") {
    if (Object.keys(m.entrypoints).length === 0) {
      problems.push(`entrypoints: names no platform; a ${kind} plugin needs a program to run`);
    }
    if (Object.keys(m.files).length === 0) problems.push(NO_FILES);
  } else {
    for (const field of ["entrypoints", "files"] as const) {
      if (m[field] !== undefined && Object.keys(m[field]).length > 0) {
        problems.push(
          `${field}: a ${kind} plugin runs elsewhere, so the host launches nothing and ships no files (kind "${kind}")`,
        );
      }
    }
  }
  const settings = { goPlugin: "go-plugin", endpoint: "remote", cluster: "cluster" } as const;
  for (const [field, owner] of Object.entries(settings) as Array<[keyof typeof settings, string]>) {
    if (owner !== kind && m[field] !== undefined) {
      problems.push(`${field}: is only for kind "${owner}", and this plugin is kind "${kind}"`);
    }
  }
  return problems;
}

/** What is wrong with an entrypoint's nodeOptions (see NODE_OPTIONS_ALLOWED). */
function nodeOptionsProblems(entry: Entrypoint, field: string): string[] {
  if (entry.nodeOptions === undefined) return [];
  if (entry.runtime !== "node") {
    return [`${field}: Node.js options need runtime "node" (this entrypoint runs the file itself)`];
  }
  const allowed = Object.keys(NODE_OPTIONS_ALLOWED).join(", ");
  return entry.nodeOptions.flatMap((option) => {
    // Split at the first "=" only: split("=", 2) would drop a second "=" and
    // what follows it, and Node would be given the whole string.
    const at = option.indexOf("=");
    const name = at < 0 ? option : option.slice(0, at);
    const value = at < 0 ? undefined : option.slice(at + 1);
    const shape = Object.hasOwn(NODE_OPTIONS_ALLOWED, name)
      ? NODE_OPTIONS_ALLOWED[name]
      : undefined;
    if (shape === undefined) {
      return [
        `${field}: "${option}" is not allowed; a manifest may give only ${allowed} (options that load other code are refused)`,
      ];
    }
    if (shape === "=N" ? value === undefined || !/^\d+$/.test(value) : value !== undefined) {
      return [
        `${field}: "${option}" must be ${shape === "=N" ? `${name}=N (a whole number)` : `${name} alone`}`,
      ];
    }
    return [];
  });
}

/** Remote and cluster plugins may leave out entrypoints and files: they are empty. */
function withDefaults(m: PluginManifest): PluginManifest {
  return { ...m, entrypoints: m.entrypoints ?? {}, files: m.files ?? {} };
}

/**
 * Why a file name from a manifest or an artifact must not be written, or
 * undefined when it is safe: relative, `/`-separated, no `..`, no empty or
 * `.` segments, no backslashes or NUL. This is what stops path traversal.
 */
export function unsafePath(path: string): string | undefined {
  if (path.length === 0) return "is empty";
  if (path.includes("\0") || path.includes("\\")) return "contains a NUL or a backslash";
  if (path.startsWith("/")) return "is an absolute path";
  if (/^[a-zA-Z]:/.test(path)) return "is an absolute path";
  const segments = path.split("/");
  if (segments.includes("..")) return "climbs out of the plugin directory (..)";
  if (segments.some((s) => s === "" || s === ".")) return "has an empty or '.' segment";
  return undefined;
}

/** Parses manifest text, JSON or YAML by file name, and validates it. */
export function parseManifest(text: string, fileName: string): PluginManifest {
  return validateManifest(parseManifestText(text, fileName), `manifest ${fileName}`);
}

/**
 * Parses manifest text, JSON or YAML by file name, without validating it;
 * a syntax error is an "invalid-manifest" error saying where (line, column).
 */
export function parseManifestText(text: string, fileName: string): unknown {
  const yaml = /\.ya?ml$/i.test(fileName);
  try {
    return yaml ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ManagementError(
      "invalid-manifest",
      `invalid manifest ${fileName}: not valid ${yaml ? "YAML" : "JSON"} (${syntaxErrorText(text, e)})`,
    );
  }
}

/** The entrypoint for `platform` (default: this host's), or a clear error. */
export function entrypointFor(manifest: PluginManifest, platform = hostPlatform()): Entrypoint {
  const entry = manifest.entrypoints[platform];
  if (entry === undefined) {
    throw new ManagementError(
      "unsupported-platform",
      `plugin "${manifest.name}" ${manifest.version} has no entrypoint for ${platform} ` +
        `(it supports: ${Object.keys(manifest.entrypoints).join(", ")})`,
    );
  }
  return entry;
}

/**
 * The files a plugin needs on `platform`: its entrypoint and every file that
 * is no other platform's entrypoint. An artifact for one platform carries
 * exactly these.
 */
export function filesFor(manifest: PluginManifest, platform: string): string[] {
  // A remote or cluster plugin runs elsewhere: no platform, no files.
  if (Object.keys(manifest.entrypoints).length === 0) return [];
  const own = entrypointFor(manifest, platform).file;
  const others = new Set(
    Object.values(manifest.entrypoints)
      .map((e) => e.file)
      .filter((file) => file !== own),
  );
  return Object.keys(manifest.files).filter((f) => !others.has(f));
}
