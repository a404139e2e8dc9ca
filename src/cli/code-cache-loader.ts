/**
 * The loader that `connect-plugin code-cache` writes next to a plugin's
 * CommonJS bundle, and the files they share (docs/local-transports.md,
 * "session 23"). Node 20 has no compile cache for a plugin's own code
 * (`module.enableCompileCache()` is Node 22), so the loader compiles the
 * bundle through `vm.Script` with V8's cached data, which turns most of the
 * compiling into deserialising.
 *
 * The cache is used only when it was made from these bundle bytes (its
 * first 4 bytes are the bundle's CRC-32, as in Node 22's compile cache; a
 * sha256 took 5-16 M more instructions to a first answer, 3%): V8 itself
 * checks only the source's length, so an edited bundle of the same length
 * would otherwise run bytecode of the old one. The CRC is zlib.crc32,
 * Node 20.15 and later; an older node starts the bundle without the cache.
 * V8 rejects a cache made by another V8 version or with other V8 flags
 * (`cachedDataRejected`) and compiles as without one; a missing, stale or
 * unreadable cache does the same. Nothing
 * is ever written unless CONNECT_PLUGIN_CODE_CACHE=write asks for it (to a
 * partial file the loader makes, never one it finds, renamed into place),
 * and not for a bundle that calls import() (DYNAMIC_IMPORT). With
 * --enable-source-maps the loader compiles the bundle as Node's require
 * does (`module._compile`), without the cache: Node 20 maps stack traces of
 * required files only, not of a vm.Script's. Either way the bundle runs as
 * the main module, as under `node <bundle>` (require.main === module), but
 * process.argv[1] is the loader's path.
 */
import { Env } from "../protocol/env.js";

/** The files of one plugin built by `connect-plugin code-cache`, all in one directory. */
export interface CodeCacheFiles {
  /** What a host starts (`node <name>.cjs`): the loader. */
  readonly loader: string;
  /** The plugin's CommonJS bundle (runs on its own too, without the cache). */
  readonly bundle: string;
  /** V8's cached data for the bundle, after the bundle's CRC-32 (4 bytes, big-endian). */
  readonly cache: string;
}

/** The file names for a plugin called `name` ("plugin" for src/plugin.ts). */
export const codeCacheFiles = (name: string): CodeCacheFiles => ({
  loader: `${name}.cjs`,
  bundle: `${name}.bundle.cjs`,
  cache: `${name}.code-cache`,
});

/** What the loader reports on stderr with CONNECT_PLUGIN_CODE_CACHE=check. */
export const CODE_CACHE_CHECK_PREFIX = "connect-plugin code cache: ";

/**
 * `globalThis[Symbol.for(CODE_CACHE_STATE_KEY)]`: how the loader found the
 * cache (a CodeCacheState), for the plugin itself to log or report: a host
 * passes no CONNECT_PLUGIN_ variable on, so =check cannot ask through one.
 * Undefined when the plugin was not started by a loader.
 */
export const CODE_CACHE_STATE_KEY = "connect-plugin.code-cache";

/**
 * How the loader found the cache: used; rejected by V8 (another node or
 * other flags); stale (made from other bundle bytes); absent (or
 * unreadable); or not looked for, source maps being on.
 */
export type CodeCacheState = "used" | "rejected" | "stale" | "absent" | "source-maps";

/**
 * A dynamic `import(` in a bundle's text (or in its strings and comments:
 * such a bundle only goes without a cache). Node 20 loses a script's
 * import() callback when V8 compiles it from cached data (it then throws
 * ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), so the loader writes no cache for
 * such a bundle, and the build says so.
 */
export const DYNAMIC_IMPORT = /\bimport\s*\(/;

/** The loader's source, CommonJS, for the files `files` (names in one directory). */
export function codeCacheLoader(files: CodeCacheFiles): string {
  const env = JSON.stringify(Env.codeCache);
  return `"use strict";
// Written by \`connect-plugin code-cache\`: starts ${files.bundle} with V8's code
// cache from ${files.cache} when that was made from these bundle bytes by this
// node with these V8 flags, and compiles it as usual otherwise.
// ${Env.codeCache}=write saves the cache when the process exits; =check says
// on stderr whether it was used (the bundle finds it in
// globalThis[Symbol.for(${JSON.stringify(CODE_CACHE_STATE_KEY)})] either way).
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const bundle = path.join(__dirname, ${JSON.stringify(files.bundle)});
const cacheFile = path.join(__dirname, ${JSON.stringify(files.cache)});
const mode = process.env[${env}];
const report = (state) => {
  globalThis[Symbol.for(${JSON.stringify(CODE_CACHE_STATE_KEY)})] = state;
  if (mode === "check") process.stderr.write(${JSON.stringify(CODE_CACHE_CHECK_PREFIX)} + state + "\\n");
};
// The bundle is the main module, as if node had been given it: it gets this
// module (require.main === module, module.filename is the bundle's; the
// bundle is in this directory, so module.paths and require resolve alike).
module.filename = bundle;
const { crc32 } = require("node:zlib");
const importDynamically = vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
if (process.sourceMapsEnabled || typeof crc32 !== "function" || importDynamically === undefined) {
  report(process.sourceMapsEnabled ? "source-maps" : "absent");
  module._compile(fs.readFileSync(bundle, "utf8"), bundle);
  return;
}
const source = fs.readFileSync(bundle);
const hash = Buffer.alloc(4);
hash.writeUInt32BE(crc32(source));
let cachedData;
let state = "absent";
if (mode !== "write") {
  try {
    const data = fs.readFileSync(cacheFile);
    if (data.length > hash.length && hash.equals(data.subarray(0, hash.length))) {
      cachedData = data.subarray(hash.length);
    } else state = "stale";
  } catch {}
}
const code = source.toString();
if (cachedData === undefined && (mode !== "write" || ${DYNAMIC_IMPORT}.test(code))) {
  // No cache to use or to make: compiled as Node's require does (no vm.Script,
  // whose import() callback is experimental on Node 20 and warns).
  report(state);
  if (mode === "write") {
    process.stderr.write("connect-plugin code cache: not written: the bundle calls import()\\n");
  }
  module._compile(code, bundle);
  return;
}
// A hashbang line (esbuild keeps the entry's) is a comment here, as in Node's own loader.
const text = code.replace(/^#!/, "//");
const script = new vm.Script(
  "(function (exports, require, module, __filename, __dirname) {" + text + "\\n})",
  // import() resolves as in a required file (without this it throws; a
  // cache is made only for a bundle without import()).
  { filename: bundle, cachedData, importModuleDynamically: importDynamically },
);
if (cachedData !== undefined) state = script.cachedDataRejected ? "rejected" : "used";
report(state);
if (mode === "write") {
  // At exit: the functions the launch compiled are in the cache, not only the top level.
  // Written to a name of its own and renamed into place; that name is made
  // here ("wx": O_EXCL, which neither follows nor reuses a link or file put
  // there) after removing one left by a dead process with this pid (unlink
  // removes a link, not what it points to).
  process.once("exit", () => {
    const partial = cacheFile + "." + process.pid + ".partial";
    let made = false;
    try {
      fs.rmSync(partial, { force: true });
      const fd = fs.openSync(partial, "wx");
      made = true;
      try {
        fs.writeFileSync(fd, Buffer.concat([hash, script.createCachedData()]));
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(partial, cacheFile);
    } catch (error) {
      if (made) fs.rmSync(partial, { force: true });
      process.stderr.write("connect-plugin code cache: not written: " + error.message + "\\n");
    }
  });
}
script
  .runInThisContext()
  .call(module.exports, module.exports, require("node:module").createRequire(bundle), module, bundle, __dirname);
`;
}
