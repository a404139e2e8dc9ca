/**
 * What the CLI's bundling commands (`connect-plugin snapshot`,
 * `connect-plugin code-cache`) share: esbuild, an optional peer dependency
 * loaded only when they run, and its messages as one line each.
 */
import type * as Esbuild from "esbuild";
import { ManagementError } from "../manifest/errors.js";

/** esbuild, or a ManagementError that says how to install it (`command` names who needs it). */
export async function loadEsbuild(command: string): Promise<typeof Esbuild> {
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
export function located(m: EsbuildMessage): string {
  return m.location ? `${m.location.file}:${m.location.line}: ${m.text}` : m.text;
}

/** A failed build's errors, joined; any other error's message. */
export function esbuildMessage(error: unknown): string {
  const errors = (error as { errors?: EsbuildMessage[] }).errors;
  if (errors === undefined || errors.length === 0) return (error as Error).message;
  return errors.map(located).join("; ");
}

/** esbuild's `target` for the node binary running this process ("node20"). */
export const nodeTarget = (): string => `node${process.versions.node.split(".")[0]}`;
