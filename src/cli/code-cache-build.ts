/**
 * `connect-plugin code-cache`: a Node plugin's main file as one CommonJS
 * bundle with V8's code cache and the loader that uses it
 * (code-cache-loader.ts), for a faster cold start that, unlike a startup
 * snapshot, needs no node option and falls back to an ordinary start by
 * itself on another node. The cache is made by launching the plugin once
 * as a host does (framed, AutoMTLS, the Handshake RPC): a cache made before
 * anything ran would hold the modules' top level only, not the functions
 * that serve() and a call compile.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import * as zlib from "node:zlib";
import { PluginClient } from "../host/plugin-client.js";
import { subprocess } from "../host/sources.js";
import { silentLogger } from "../logging/logger.js";
import { ManagementError } from "../manifest/errors.js";
import { Env } from "../protocol/env.js";
import type { HandshakeConfig } from "../protocol/plugin-set.js";
import {
  CODE_CACHE_CHECK_PREFIX,
  DYNAMIC_IMPORT,
  codeCacheFiles,
  codeCacheLoader,
  type CodeCacheFiles,
  type CodeCacheState,
} from "./code-cache-loader.js";
import { onEndingSignal } from "./ending-signal.js";
import { bundleCommonJs, type BundleBuild } from "./esbuild-load.js";
import { runToEnd } from "./run-to-end.js";

/** The files written (`bytes`: the cache's); another node than `node` starts them without the cache. */
export interface CodeCacheResult extends BundleBuild {
  /** Absolute paths. */
  readonly files: CodeCacheFiles;
  /** How a start of the loader without the build's variables found the cache ("used"). */
  readonly state: CodeCacheState;
}

/** How long the build's launch and check may take by default: they take about a second. */
export const DEFAULT_CODE_CACHE_TIMEOUT_MS = 60_000;

/**
 * How long an interrupted build waits for the step it was in to end (the
 * bundling, or the launched plugin to be closed: its Shutdown call, then
 * its exit, each take PluginClient's 2 s grace period at most before its
 * group is killed) before it removes its files and the CLI dies of the
 * signal, default 5 s.
 */
const INTERRUPT_GRACE_MS = 5_000;

export interface CodeCacheOptions {
  /** Stop the build's launch (and its check) after this long. Default DEFAULT_CODE_CACHE_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /**
   * Node options the plugin will run with (a manifest's `nodeOptions`,
   * say `--max-semi-space-size=1`): V8 accepts a cache only under the V8
   * flags it was made with. Default none.
   */
  readonly nodeOptions?: readonly string[];
}

/**
 * Bundles `entry` into `outDir` (made if missing), writes the loader, and
 * launches it once with `handshake`'s cookie and protocol version to make
 * the cache. Files of an earlier build there are replaced. A SIGINT,
 * SIGTERM or SIGHUP at any step stops the launched plugin, removes the
 * files the build writes and the folders it made if empty, and the CLI
 * then dies of it as the other commands do.
 */
export async function buildCodeCache(
  entry: string,
  outDir: string,
  handshake: HandshakeConfig,
  options: CodeCacheOptions = {},
): Promise<CodeCacheResult> {
  const { timeoutMs = DEFAULT_CODE_CACHE_TIMEOUT_MS, nodeOptions = [] } = options;
  const main = resolve(entry);
  if (!existsSync(main)) throw new ManagementError("not-found", `no such file: ${entry}`);
  if (typeof (zlib as { crc32?: unknown }).crc32 !== "function") {
    throw new ManagementError(
      "incompatible",
      `a code cache needs node 20.15 or later (zlib.crc32), not ${process.version}`,
    );
  }
  const dir = resolve(outDir);
  const names = codeCacheFiles(basename(main, extname(main)));
  const files: CodeCacheFiles = {
    loader: join(dir, names.loader),
    bundle: join(dir, names.bundle),
    cache: join(dir, names.cache),
  };
  if (Object.values(files).includes(main)) {
    throw new ManagementError(
      "invalid-config",
      `${entry} would be overwritten by its own build: give another --out-dir`,
    );
  }
  const made = mkdirSync(dir, { recursive: true });
  /**
   * What an interrupted build removes: the files it writes (esbuild's source
   * map too), and the folders it made for them if they are empty.
   */
  const removeBuild = (): void => {
    for (const file of [files.loader, files.bundle, `${files.bundle}.map`, files.cache])
      rmSync(file, { force: true });
    removeMadeFolders(dir, made);
  };
  // Until the check (whose runToEnd passes a signal on to it and then runs
  // removeBuild), a SIGINT, SIGTERM or SIGHUP waits for the step under way
  // to end, removes the build, and the CLI dies of it: `during` keeps the
  // build itself from going on (and reporting) meanwhile.
  let step: () => Promise<unknown> = () => Promise.resolve();
  let interrupted: Promise<void> | undefined;
  const stopListening = onEndingSignal(
    () => (interrupted = settledWithin(step(), INTERRUPT_GRACE_MS).then(() => removeBuild())),
  );
  const during = async <T>(work: Promise<T>): Promise<T> => {
    try {
      return await work;
    } finally {
      // The CLI dies once it is done, before this await returns.
      if (interrupted !== undefined) await interrupted;
    }
  };
  let warnings: string[];
  let failed: Error | undefined;
  try {
    // A cache of an earlier bundle would only be found stale: no reason to keep it.
    rmSync(files.cache, { force: true });
    const bundling = bundleCommonJs("connect-plugin code-cache", main, "as CommonJS", {
      outfile: files.bundle,
      sourcemap: true,
    });
    step = () => bundling;
    try {
      warnings = await during(bundling);
    } catch (error) {
      // A bundle that failed (the user's code) wrote nothing (esbuild writes
      // no file on an error): the folders made for it go, and an earlier
      // build's loader and bundle in a folder that was there stay, as a
      // failed launch's do (removeBuild would take them).
      removeMadeFolders(dir, made);
      throw error;
    }
    writeFileSync(files.loader, codeCacheLoader(names));

    const client = new PluginClient({
      handshake,
      plugins: {},
      logger: silentLogger,
      startTimeoutMs: timeoutMs,
      // Without the builder's NODE_OPTIONS: the cache is for node as a host starts it.
      source: subprocess(process.execPath, [...nodeOptions, files.loader], {
        env: { [Env.codeCache]: "write", NODE_OPTIONS: "" },
      }),
    });
    // The loader writes the cache when the plugin exits: closed first, then removed.
    step = () => client.close();
    try {
      await during(client.start());
    } catch (error) {
      failed = error as Error;
    } finally {
      await during(client.close());
    }
  } finally {
    stopListening();
  }
  if (failed !== undefined) {
    // It does so however the plugin ended: that cache is not a build's.
    rmSync(files.cache, { force: true });
    throw new ManagementError(
      "incompatible",
      `could not launch ${entry} to make its code cache (is the cookie ` +
        `${handshake.magicCookieKey} its own?): ${failed.message}`,
      { cause: failed },
    );
  }
  if (!existsSync(files.cache) && DYNAMIC_IMPORT.test(readFileSync(files.bundle, "utf8"))) {
    return {
      files,
      bytes: 0,
      state: await cacheState([...nodeOptions, files.loader], timeoutMs, removeBuild),
      node: process.execPath,
      nodeVersion: process.version,
      warnings: [
        ...warnings,
        "the bundle calls import(), which node 20 loses in code compiled from a V8 code cache: " +
          "no cache was written, the loader compiles the bundle as usual",
      ],
    };
  }
  if (!existsSync(files.cache)) {
    throw new ManagementError(
      "incompatible",
      `${entry} exited without writing its code cache (did it exit from a signal handler or ` +
        "an uncaught error?)",
    );
  }
  return {
    files,
    bytes: statSync(files.cache).size,
    state: await cacheState([...nodeOptions, files.loader], timeoutMs, removeBuild),
    node: process.execPath,
    nodeVersion: process.version,
    warnings,
  };
}

/**
 * Starts the loader as a person would, without a cookie (the plugin says it
 * is one and exits), and reads what it says of the cache. A start that has
 * not ended after `timeoutMs` is stopped and fails the build: a plugin that
 * does not exit there would hang whoever starts it by hand too. The cache
 * stays then, with the loader and bundle: the launch before made it from
 * this bundle and ended cleanly, the check only reads it (and was killed,
 * so it wrote nothing), and a host's start, with the cookie, uses it; the
 * hang is the plugin's, started without a host, not the cache's. Removing
 * it would only make those files start slower (the next build replaces it).
 * A Ctrl-C (SIGINT, SIGTERM, SIGHUP) during the check is another matter:
 * the build was cancelled, not reported, so `interrupted` (runToEnd's) runs
 * before the CLI dies of the signal, and removes the build's files.
 */
async function cacheState(
  args: string[],
  timeoutMs: number,
  interrupted: () => void,
): Promise<CodeCacheState> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, [Env.codeCache]: "check" };
  const { stderr, timedOut } = await runToEnd(process.execPath, args, timeoutMs, env, interrupted);
  if (timedOut) {
    throw new ManagementError(
      "incompatible",
      `started without its cookie, ${args.at(-1)} did not exit in ${timeoutMs} ms (--timeout) ` +
        "and was stopped: a plugin started by hand should say it is one and exit; does " +
        "something it does before serve() wait for the host? (its loader, bundle and code cache " +
        "stay, and work as a host starts them)",
    );
  }
  const line = stderr.split("\n").find((l) => l.startsWith(CODE_CACHE_CHECK_PREFIX));
  if (line === undefined) {
    throw new ManagementError(
      "incompatible",
      `the loader did not say whether it used the cache: ${stderr.trim().slice(0, 2_000)}`,
    );
  }
  return line.slice(CODE_CACHE_CHECK_PREFIX.length) as CodeCacheState;
}

/** Resolves when `work` settles, or after `ms`, whichever is first; never rejects. */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.then(
      () => {},
      () => {},
    ),
    new Promise<void>((r) => (timer = setTimeout(r, ms))),
  ]);
  clearTimeout(timer);
}

/**
 * Removes `dir` and its parents up to `made` (what mkdirSync's recursive
 * made, undefined if `dir` was there), each only while empty: a folder the
 * build did not make, or one holding anything else, stays.
 */
function removeMadeFolders(dir: string, made: string | undefined): void {
  if (made === undefined) return;
  for (let folder = dir; ; folder = dirname(folder)) {
    try {
      rmdirSync(folder);
    } catch (e) {
      // Not empty (nor then its parents), or not ours to remove; gone is fine.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") return;
    }
    if (folder === made || dirname(folder) === folder) return;
  }
}
