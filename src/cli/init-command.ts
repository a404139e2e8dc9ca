/** `connect-plugin init`: writes a plugin.json for a directory of plugin files. */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { Command } from "commander";
import semver from "semver";
import { ManagementError } from "../manifest/errors.js";
import { computeFiles } from "../manifest/files.js";
import { validateManifest } from "../manifest/manifest.js";
import { hostPlatform } from "../manifest/platform.js";
import type { Entrypoint, PluginManifest, ProvidedPlugin } from "../manifest/types.js";
import { hostVersion } from "../manager/host-version.js";
import { platformsOption } from "./platform-option.js";
import { action, count } from "./program.js";

/** Where a Node plugin runs by default: the platforms Node ships for that hosts use most. */
const NODE_PLATFORMS = ["linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"];

interface InitOptions {
  name?: string;
  pluginVersion?: string;
  description?: string;
  license?: string;
  entry?: string;
  runtime?: "node" | "exec";
  platforms?: string[];
  plugin: string[];
  protocolVersion: string;
  hostVersions?: string;
  force?: boolean;
}

export function registerInitCommand(program: Command): void {
  program
    .command("init")
    .argument("[dir]", "the directory with the plugin's files", ".")
    .description(
      "write a plugin.json for a directory of plugin files (name, version, description and " +
        "license default to its package.json's; every file is listed with its sha256)",
    )
    .requiredOption(
      "--plugin <name=service>",
      "a plugin it provides and its protobuf service, e.g. greeter=greeter.v1.GreeterService (repeatable)",
      // No default value, so that commander reports a missing --plugin as a usage error.
      (value: string, all: string[] | undefined) => [...(all ?? []), value],
    )
    .option("--entry <file>", "the file to run (default: package.json's main, else plugin.js)")
    .option(
      "--runtime <node|exec>",
      "node runs the entry with the host's Node.js (default for .js/.mjs/.cjs); exec runs it itself",
    )
    .option(
      "--platforms <list>",
      `os/arch list the entry serves (default: ${NODE_PLATFORMS.join(",")} for node, this host's for exec)`,
      platformsOption,
    )
    .option("--name <name>", "the plugin's name (default: package.json's, else the directory's)")
    .option("--plugin-version <semver>", "default: package.json's version, else 0.1.0")
    .option("--description <text>")
    .option("--license <spdx>", "default: package.json's, else UNLICENSED")
    .option("--protocol-version <n>", "the protocol version it serves", "1")
    .option(
      "--host-versions <range>",
      "compatible connect-plugin hosts (default: this major version)",
    )
    .option("--force", "overwrite an existing plugin.json")
    .action(
      action(async (dir: string, opts: InitOptions) => {
        const file = join(dir, "plugin.json");
        if (!existsSync(dir) || !statSync(dir).isDirectory())
          throw new ManagementError("not-found", `${dir} is not a directory`);
        if (existsSync(file) && opts.force !== true)
          throw new ManagementError("io", `${file} exists; use --force to overwrite it`);
        const manifest = await initialManifest(dir, opts);
        writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
        return {
          json: { file: resolve(file), manifest },
          text:
            `wrote ${file}: ${manifest.name} ${manifest.version}, ` +
            `${count(Object.keys(manifest.files).length, "file")}, ` +
            `entry ${Object.values(manifest.entrypoints)[0]?.file} ` +
            `on ${Object.keys(manifest.entrypoints).join(", ")}\n` +
            `next: connect-plugin sign ${dir} --key <key>  (after changing a file: --update-files)`,
        };
      }),
    );
}

/** The manifest init writes, validated against the schema before it is written. */
async function initialManifest(dir: string, opts: InitOptions): Promise<PluginManifest> {
  const pkg = readPackageJson(dir);
  const name = (opts.name ?? pkg.name?.replace(/^@[^/]+\//, "") ?? basename(resolve(dir)))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-");
  const entry = opts.entry ?? pkg.main ?? "plugin.js";
  if (!existsSync(join(dir, entry)))
    throw new ManagementError(
      "not-found",
      `the entry ${entry} is not in ${dir}; build the plugin first, or name it with --entry`,
    );
  const runtime = opts.runtime ?? (/\.[cm]?js$/.test(entry) ? "node" : "exec");
  if (runtime !== "node" && runtime !== "exec")
    throw new ManagementError(
      "invalid-manifest",
      `--runtime must be node or exec, not ${String(runtime)}`,
    );
  const platforms = opts.platforms ?? (runtime === "node" ? NODE_PLATFORMS : [hostPlatform()]);
  const entrypoint: Entrypoint = { file: entry, runtime };
  const plugins = opts.plugin.map(parsePlugin);
  const files = await computeFiles(dir);
  const major = semver.major(hostVersion());
  return validateManifest(
    {
      schemaVersion: 1,
      name,
      version: opts.pluginVersion ?? pkg.version ?? "0.1.0",
      description: opts.description ?? pkg.description ?? `The ${name} plugin.`,
      license: opts.license ?? pkg.license ?? "UNLICENSED",
      entrypoints: Object.fromEntries(platforms.map((p) => [p, entrypoint])),
      protocolVersions: [Number(opts.protocolVersion)],
      plugins,
      hostVersions: opts.hostVersions ?? `>=${hostVersion()} <${major + 1}.0.0`,
      files,
    },
    `plugin.json for ${dir}`,
  );
}

function parsePlugin(text: string): ProvidedPlugin {
  const match = /^([^=]+)=([A-Za-z_][\w.]*)$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined)
    throw new ManagementError(
      "invalid-manifest",
      `--plugin ${text}: expected NAME=SERVICE, e.g. greeter=greeter.v1.GreeterService`,
    );
  return { name: match[1], service: match[2] };
}

function readPackageJson(dir: string): {
  name?: string;
  version?: string;
  description?: string;
  license?: string;
  main?: string;
} {
  const file = join(dir, "package.json");
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, string>;
  } catch (e) {
    throw new ManagementError("invalid-config", `${file} is not JSON: ${(e as Error).message}`);
  }
}
