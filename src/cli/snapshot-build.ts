/**
 * `connect-plugin snapshot`: a Node plugin's main file as a V8 startup
 * snapshot (docs/local-transports.md, "Cold start"). The plugin then starts
 * with its modules loaded and its descriptors built:
 * `subprocess(process.execPath, ["--snapshot-blob", "plugin.blob"])`.
 *
 * Node builds a snapshot from one CommonJS script that may require only
 * built-in modules, so the entry is bundled first (esbuild, an optional peer
 * dependency). What Node 20 refuses in a snapshot is kept out of it:
 * - built-in modules it does not support there (node:tls ends the build
 *   with "Unknown external reference"; node:http needs Array.prototype.toSorted,
 *   which the builder's context lacks) are loaded on first use, after the
 *   snapshot starts;
 * - fetch and its classes (Headers...): Node 20's undici needs WebAssembly
 *   when it loads, and the builder's context has none; touching them while
 *   the snapshot is built fails with a message saying so.
 * The blob runs only on the node binary that built it.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type * as Esbuild from "esbuild";
import { ManagementError } from "../manifest/errors.js";
import { SNAPSHOT_BUILD } from "../protocol/snapshot-build.js";
import { bundleCommonJs, type BundleBuild } from "./esbuild-load.js";
import { runToEnd } from "./run-to-end.js";

/** The built-in modules Node 20 supports in user-land snapshots (lib/internal/main/mksnapshot.js). */
const IN_SNAPSHOT = new Set([
  "assert",
  "assert/strict",
  "buffer",
  "console",
  "constants",
  "crypto",
  "diagnostics_channel",
  "dns",
  "events",
  "fs",
  "fs/promises",
  "net",
  "os",
  "path",
  "path/posix",
  "path/win32",
  "process",
  "punycode",
  "querystring",
  "stream",
  "stream/promises",
  "string_decoder",
  "sys",
  "timers",
  "timers/promises",
  "url",
  "util",
  "util/types",
  "v8",
  "zlib",
]);

/** Globals that load undici when first touched. */
const FETCH_GLOBALS = [
  "fetch",
  "Headers",
  "Request",
  "Response",
  "FormData",
  "WebSocket",
  "EventSource",
];

/** The blob written; `node` is the only binary that can start it. */
export interface SnapshotResult extends BundleBuild {
  readonly blob: string;
}

/** How long a snapshot build may take by default: a build takes seconds. */
export const DEFAULT_SNAPSHOT_TIMEOUT_MS = 120_000;

/**
 * Bundles `entry` and builds `blob` from it with this process's node binary.
 * Node takes the snapshot when the entry's event loop is empty; a build
 * still running after `timeoutMs` is stopped and reported. `launcher`
 * (default none) runs that node through another program: the bench counts
 * a snapshot's instructions under valgrind, whose emulated CPU has fewer
 * features than the real one, and V8 refuses a blob built for other CPU
 * features, so that blob is built under valgrind too.
 */
export async function buildSnapshot(
  entry: string,
  blob: string,
  timeoutMs = DEFAULT_SNAPSHOT_TIMEOUT_MS,
  launcher: readonly string[] = [],
): Promise<SnapshotResult> {
  const main = resolve(entry);
  if (!existsSync(main)) throw new ManagementError("not-found", `no such file: ${entry}`);
  const out = resolve(blob);
  if (!existsSync(dirname(out))) {
    throw new ManagementError("not-found", `no such directory for the blob: ${dirname(out)}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "connect-plugin-snapshot-"));
  let partial: string | undefined;
  /** The build's temporary folder and partial blob, gone (its finally, or a Ctrl-C, which skips it). */
  const removeTemporaries = (): void => {
    rmSync(dir, { recursive: true, force: true });
    if (partial !== undefined) rmSync(partial, { force: true });
  };
  try {
    const bundle = join(dir, "plugin.cjs");
    const hook = `globalThis[Symbol.for(${JSON.stringify(SNAPSHOT_BUILD)})]`;
    const warnings = await bundleCommonJs("connect-plugin snapshot", main, "for a snapshot", {
      outfile: bundle,
      plugins: [deferUnsupportedBuiltins()],
      banner: {
        js: `${hook} = { startupSnapshot: require("node:v8").startupSnapshot, served: false };\n${guardFetch()}`,
      },
      footer: {
        js: `if (!${hook}.served) throw new Error(${JSON.stringify(
          `${entry} did not call serve() when it loaded: a snapshot's main file must ` +
            "call serve() (not await anything before it)",
        )});`,
      },
    });
    // Built beside `out` and renamed onto it when done: a failed rebuild
    // leaves the blob that was there.
    partial = `${out}.${randomBytes(6).toString("hex")}.partial`;
    const [command = process.execPath, ...prefix] = [...launcher, process.execPath];
    const { code, stderr, timedOut } = await runToEnd(
      command,
      [...prefix, "--snapshot-blob", partial, "--build-snapshot", bundle],
      timeoutMs,
      process.env,
      // Ctrl-C: the CLI dies of it without the finally below running.
      removeTemporaries,
    );
    if (timedOut) {
      throw new ManagementError(
        "incompatible",
        `the snapshot build of ${entry} did not finish in ${timeoutMs} ms and was stopped: ` +
          "Node takes the snapshot when nothing is left to run, and something started while " +
          "the modules loaded (a timer, a socket, a child process) keeps it running; start " +
          "it after serve() resolves",
      );
    }
    if (code !== 0 || !existsSync(partial)) {
      throw new ManagementError(
        "incompatible",
        `node ${process.version} could not build a snapshot of ${entry} (exit ${code}): ` +
          buildProblem(stderr),
      );
    }
    renameSync(partial, out);
    return {
      blob: out,
      bytes: statSync(out).size,
      node: process.execPath,
      nodeVersion: process.version,
      warnings,
    };
  } finally {
    removeTemporaries();
  }
}

/**
 * Resolves the built-in modules Node 20 cannot hold in a snapshot to a
 * stand-in whose exports load the real module on first use, and pass on
 * assignments (`http.globalAgent = agent`). (Its keys are those of this
 * node's module, read here: the builder runs the same binary.)
 */
function deferUnsupportedBuiltins(): Esbuild.Plugin {
  const require = createRequire(import.meta.url);
  return {
    name: "defer-unsupported-builtins",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        const id = args.path.replace(/^node:/, "");
        if (!builtinModules.includes(id)) return undefined;
        if (IN_SNAPSHOT.has(id) || args.namespace === "deferred") {
          return { path: `node:${id}`, external: true };
        }
        return { path: id, namespace: "deferred" };
      });
      build.onLoad({ filter: /.*/, namespace: "deferred" }, (args) => {
        const keys = Object.keys(require(`node:${args.path}`) as object);
        const id = JSON.stringify(`node:${args.path}`);
        return {
          loader: "js",
          contents:
            `let real;\n` +
            `const load = () => {\n` +
            `  if (real !== undefined) return real;\n` +
            `  if (require("node:v8").startupSnapshot.isBuildingSnapshot())\n` +
            `    throw new Error(${JSON.stringify(
              `node:${args.path} was used while the snapshot was built (when a module ` +
                `loaded); Node 20 cannot hold it in a snapshot: use it inside functions ` +
                `that run after serve() starts`,
            )});\n` +
            `  return (real = require(${id}));\n` +
            `};\n` +
            `for (const key of ${JSON.stringify(keys)})\n` +
            `  Object.defineProperty(exports, key, {\n` +
            `    enumerable: true,\n` +
            `    get: () => load()[key],\n` +
            `    set: (value) => { load()[key] = value; },\n` +
            `  });\n`,
        };
      });
    },
  };
}

/**
 * The bundle's start: fetch's globals fail with a clear message while the
 * snapshot is built, and are Node's own again once it starts.
 */
function guardFetch(): string {
  const message =
    "was used while the snapshot was built (when a module loaded); Node 20 cannot hold " +
    "its fetch implementation (undici) in a snapshot: use it inside functions that run " +
    "after serve() starts";
  return (
    `(() => {\n` +
    `  const saved = ${JSON.stringify(FETCH_GLOBALS)}.map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]).filter(([, d]) => d !== undefined);\n` +
    `  for (const [name] of saved) Object.defineProperty(globalThis, name, { configurable: true, get() { throw new Error(name + ${JSON.stringify(` ${message}`)}); } });\n` +
    `  require("node:v8").startupSnapshot.addDeserializeCallback(() => { for (const [name, d] of saved) Object.defineProperty(globalThis, name, d); });\n` +
    `})();\n`
  );
}

/** The error line of a failed build's stderr (the message, not its source line and stack). */
function buildProblem(stderr: string): string {
  const line = stderr.split("\n").find((l) => /^[A-Za-z]*Error: /.test(l));
  return line ?? stderr.trim().slice(0, 4_000);
}
