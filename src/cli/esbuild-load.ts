/**
 * What the CLI's bundling commands (`connect-plugin snapshot`,
 * `connect-plugin code-cache`) share: a plugin's main file bundled as one
 * CommonJS file by esbuild, an optional peer dependency loaded only when
 * they run, and what they report.
 */
import type * as Esbuild from "esbuild";
import { ManagementError } from "../manifest/errors.js";

/** What a bundling command reports besides its files. */
export interface BundleBuild {
  /** The size of what it built (the blob, the cache). */
  readonly bytes: number;
  /** The node binary that built it: what it is for. */
  readonly node: string;
  readonly nodeVersion: string;
  /** esbuild's warnings, e.g. `import.meta` used (it is empty in a CommonJS bundle). */
  readonly warnings: readonly string[];
}

/**
 * Bundles `entry` into one CommonJS file for this node, with `options` on
 * top (outfile, plugins, banner...); returns esbuild's warnings. `command`
 * names who needs esbuild when it is missing; a failed build is a
 * ManagementError, "cannot bundle <entry> <purpose>: ...", which says how
 * to write a main file that awaits at its top level.
 */
export async function bundleCommonJs(
  command: string,
  entry: string,
  purpose: string,
  options: Esbuild.BuildOptions,
): Promise<string[]> {
  const esbuild = await loadEsbuild(command);
  try {
    const built = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: "node",
      format: "cjs",
      target: `node${process.versions.node.split(".")[0]}`,
      logLevel: "silent",
      ...options,
    });
    return built.warnings.map(located);
  } catch (error) {
    const message = esbuildMessage(error);
    throw new ManagementError(
      "incompatible",
      `cannot bundle ${entry} ${purpose}: ${message}` +
        (/top-level await/i.test(message)
          ? " (the main file is bundled as CommonJS: write serve(...) or serve(...).then(...), not await serve(...))"
          : ""),
      { cause: error },
    );
  }
}

/** esbuild, or a ManagementError that says how to install it (`command` names who needs it). */
async function loadEsbuild(command: string): Promise<typeof Esbuild> {
  try {
    return await import("esbuild");
  } catch (error) {
    throw new ManagementError(
      "incompatible",
      `${command} bundles the plugin with esbuild, which is not installed: ` +
        "npm install --save-dev esbuild",
      { cause: error },
    );
  }
}

type EsbuildMessage = { text: string; location?: { file: string; line: number } | null };

/** A warning or error as `file:line: text`. */
function located(m: EsbuildMessage): string {
  return m.location ? `${m.location.file}:${m.location.line}: ${m.text}` : m.text;
}

/** A failed build's errors, joined; any other error's message. */
function esbuildMessage(error: unknown): string {
  const errors = (error as { errors?: EsbuildMessage[] }).errors;
  if (errors === undefined || errors.length === 0) return (error as Error).message;
  return errors.map(located).join("; ");
}
