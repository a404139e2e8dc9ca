/**
 * `connect-plugin code-cache`: a Node plugin bundled as one CommonJS file and
 * started by a loader with the V8 code cache its build made by launching it
 * once. The plugin behaves as from its files (AutoMTLS, calls, errors,
 * shutdown); the cache is used only for the bundle bytes it was made from
 * and only by a V8 that accepts it, and otherwise the plugin starts as
 * without it; nothing is written at run time unless the build asks; the
 * manifest pins the cache like every other file. Real subprocesses: the
 * CLI, the build's launch, the plugin through subprocess(), the manager.
 */
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { crc32 } from "node:zlib";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { KV, handshake } from "../examples/kv/shared.js";
import { codeCacheFiles, codeCacheLoader } from "../src/cli/code-cache-loader.js";
import { EXIT } from "../src/cli/exit-codes.js";
import { subprocess } from "../src/index.js";
import { PluginManager } from "../src/manager/manager.js";
import {
  MemoryLogger,
  decode,
  encode,
  isAlive,
  isRunning,
  kvClient,
  tempDir,
  waitFor,
} from "./helpers.js";
import { cli, cliHost, keysOnDisk, signAndInstall, startCli } from "./oci-helpers.js";

const plugin = fileURLToPath(new URL("./fixtures/code-cache-plugin.js", import.meta.url));
const shared = fileURLToPath(new URL("../examples/kv/shared.js", import.meta.url));
const dir = tempDir("code-cache-test-");
const built = cli(["code-cache", plugin, "-o", dir, "--handshake", shared, "--json"]);
const loader = join(dir, "code-cache-plugin.cjs");
const bundle = join(dir, "code-cache-plugin.bundle.cjs");
const cache = join(dir, "code-cache-plugin.code-cache");
const MARK = "bundle as built";

/** What the loader says of the cache when started by hand (the plugin then exits: no cookie). */
async function cacheState(main: string, nodeArgs: string[] = []): Promise<string> {
  const { stderr } = await promisify(execFile)(process.execPath, [...nodeArgs, main], {
    env: { PATH: process.env.PATH, CONNECT_PLUGIN_CODE_CACHE: "check" },
  }).catch((e: { stderr: string }) => e);
  return /^connect-plugin code cache: ([\w-]+)$/m.exec(stderr)?.[1] ?? `no answer: ${stderr}`;
}

/**
 * Launches `node ...args` as a KV plugin, checks a call, a call's error and
 * a graceful exit; returns the `mark` its top-level log line carried and
 * how the loader found the `cache`, as the plugin saw it.
 */
async function serveAndStop(args: string[]): Promise<Record<string, unknown> | undefined> {
  const logger = new MemoryLogger();
  const client = kvClient(subprocess(process.execPath, args), { logger });
  try {
    await client.start();
    const pid = Number(/^pid (\d+):/.exec(client.status().where)?.[1]);
    const kv = client.dispense("kv");
    await kv.put({ key: "k", value: encode("v") });
    assert.equal(decode((await kv.get({ key: "k" })).value), "v");
    assert.equal(decode((await kv.get({ key: "protocol" })).value), "connect-plugin-framed");
    await assert.rejects(kv.get({ key: "fail" }), (e: unknown) => {
      assert.equal(ConnectError.from(e).code, Code.NotFound);
      return true;
    });
    assert.ok(logger.messages("stderr").includes("configuring server automatic mTLS"));
    await client.close();
    await waitFor("the plugin exits", () => !isAlive(pid), 10_000);
    assert.ok(logger.messages("stderr").includes("plugin stopped"), "a graceful shutdown");
  } finally {
    await client.close();
  }
  return fixtureLine(logger);
}

/** The fixture's top-level log line: its `mark` and what the loader said of the `cache`. */
function fixtureLine(logger: MemoryLogger): Record<string, unknown> | undefined {
  const fields = logger.records.find((r) => r.message === "code-cache fixture")?.fields;
  return fields && { mark: fields.mark, cache: fields.cache };
}

/** A copy of the built directory, for a test that changes a file in it. */
function copyOfBuild(): string {
  const copy = join(tempDir("code-cache-copy-"), "bundle");
  cpSync(dir, copy, { recursive: true });
  return copy;
}

/** A copy of the built directory made a plugin directory by `connect-plugin init` (a manifest, unsigned). */
async function pluginDirOfBuild(): Promise<string> {
  await built;
  const copy = copyOfBuild();
  const init = await cli([
    "init",
    copy,
    "--name",
    "kv",
    "--entry",
    "code-cache-plugin.cjs",
    "--plugin",
    "kv=example.kv.v1.KV",
  ]);
  assert.equal(init.code, 0, init.stderr);
  return copy;
}

test("a plugin built with code-cache serves through its loader over framed + AutoMTLS, with the cache its build made", async () => {
  const { code, stdout, stderr } = await built;
  assert.equal(code, 0, stderr);
  const json = JSON.parse(stdout) as {
    files: Record<string, string>;
    bytes: number;
    state: string;
    nodeVersion: string;
  };
  assert.deepEqual(json.files, { loader, bundle, cache });
  assert.equal(json.state, "used");
  assert.equal(json.nodeVersion, process.version);
  assert.ok(json.bytes > 100_000, `a cache of ${json.bytes} bytes`);
  assert.deepEqual(readdirSync(dir).sort(), [
    "code-cache-plugin.bundle.cjs",
    "code-cache-plugin.bundle.cjs.map",
    "code-cache-plugin.cjs",
    "code-cache-plugin.code-cache",
  ]);
  assert.ok(readFileSync(bundle, "utf8").startsWith("#!"), "the entry's hashbang is in the bundle");
  assert.equal(await cacheState(loader), "used");
  const before = readFileSync(cache);
  assert.deepEqual(await serveAndStop([loader]), { mark: MARK, cache: "used" });
  assert.deepEqual(readFileSync(cache), before, "a launch does not rewrite the cache");
});

test("a launch writes no cache unasked, even when the host's environment asks (a host passes no CONNECT_PLUGIN_ variable on)", async () => {
  await built;
  const copy = copyOfBuild();
  rmSync(join(copy, "code-cache-plugin.code-cache"));
  const main = join(copy, "code-cache-plugin.cjs");
  assert.equal(await cacheState(main), "absent");
  process.env.CONNECT_PLUGIN_CODE_CACHE = "write";
  try {
    assert.deepEqual(await serveAndStop([main]), { mark: MARK, cache: "absent" });
  } finally {
    delete process.env.CONNECT_PLUGIN_CODE_CACHE;
  }
  assert.ok(!readdirSync(copy).some((f) => f.includes("code-cache-plugin.code-cache")));
});

test("a cache made from other bundle bytes is not used: a bundle edited to the same length runs as edited", async () => {
  await built;
  const copy = copyOfBuild();
  const edited = join(copy, "code-cache-plugin.bundle.cjs");
  const source = readFileSync(edited, "utf8");
  // V8's own check of cached data is the source's length: this edit passes it.
  assert.ok(source.includes(`"${MARK}"`));
  writeFileSync(edited, source.replace(`"${MARK}"`, '"bundle, edited!"'));
  assert.equal(readFileSync(edited).length, Buffer.byteLength(source));
  const main = join(copy, "code-cache-plugin.cjs");
  assert.equal(await cacheState(main), "stale");
  assert.deepEqual(await serveAndStop([main]), { mark: "bundle, edited!", cache: "stale" });
});

test("V8 refuses the cache under other V8 flags, or cut short, and the plugin starts as without it; with source maps on it is not read", async () => {
  await built;
  assert.equal(await cacheState(loader, ["--max-semi-space-size=8"]), "rejected");
  assert.deepEqual(await serveAndStop(["--max-semi-space-size=8", loader]), {
    mark: MARK,
    cache: "rejected",
  });
  // Node maps stack traces of a required bundle, not of a vm.Script's.
  assert.equal(await cacheState(loader, ["--enable-source-maps"]), "source-maps");
  assert.deepEqual(await serveAndStop(["--enable-source-maps", loader]), {
    mark: MARK,
    cache: "source-maps",
  });
  const copy = copyOfBuild();
  truncateSync(join(copy, "code-cache-plugin.code-cache"), 4 + 1_000);
  const main = join(copy, "code-cache-plugin.cjs");
  assert.equal(await cacheState(main), "rejected");
  assert.deepEqual(await serveAndStop([main]), { mark: MARK, cache: "rejected" });
});

test("a cache built for the plugin's node options (a manifest's nodeOptions) is used under them, and under no others", async () => {
  const out = tempDir("code-cache-options-");
  const option = "--max-semi-space-size=8";
  const res = await cli([
    "code-cache",
    plugin,
    "-o",
    out,
    "--handshake",
    shared,
    `--node-option=${option}`,
    "--json",
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal((JSON.parse(res.stdout) as { state: string }).state, "used");
  const main = join(out, "code-cache-plugin.cjs");
  assert.equal(await cacheState(main, [option]), "used");
  assert.equal(await cacheState(main), "rejected");
});

test("the build says what is wrong: no handshake, a wrong cookie, top-level await, an entry its loader would overwrite, a missing entry", async () => {
  const out = tempDir("code-cache-bad-");
  const none = await cli(["code-cache", plugin, "-o", out]);
  assert.equal(none.code, EXIT.invalid, none.stderr);
  assert.match(none.stderr, /give the plugin's --cookie or --handshake, one/);

  const wrong = await cli(["code-cache", plugin, "-o", out, "--cookie", "KV_PLUGIN=nope"]);
  assert.notEqual(wrong.code, 0);
  assert.match(
    wrong.stderr,
    /could not launch .*code-cache-plugin\.js to make its code cache \(is the cookie KV_PLUGIN its own\?\)[\s\S]*magic cookie mismatch/,
  );
  assert.ok(!readdirSync(out).includes("code-cache-plugin.code-cache"));

  const awaiting = join(out, "awaiting.mjs");
  writeFileSync(awaiting, "await Promise.resolve();\n");
  // An earlier build's loader and bundle of that entry, in an out dir that was there.
  const earlier = codeCacheFiles("awaiting");
  writeFileSync(join(out, earlier.loader), "// an earlier build's loader\n");
  writeFileSync(join(out, earlier.bundle), "// an earlier build's bundle\n");
  const tla = await cli(["code-cache", awaiting, "-o", out, "--cookie", "K=V"]);
  assert.notEqual(tla.code, 0);
  assert.match(
    tla.stderr,
    /cannot bundle .*awaiting\.mjs as CommonJS: .*not await serve\(\.\.\.\)/,
  );
  assert.ok(existsSync(join(out, earlier.loader)), "a failed bundle keeps the earlier loader");
  assert.ok(existsSync(join(out, earlier.bundle)), "a failed bundle keeps the earlier bundle");
  // A bundle that fails leaves no out dir the build made for it.
  const made = join(out, "made", "here");
  const tlaMade = await cli(["code-cache", awaiting, "-o", made, "--cookie", "K=V"]);
  assert.notEqual(tlaMade.code, 0);
  assert.match(tlaMade.stderr, /cannot bundle .*awaiting\.mjs as CommonJS/);
  assert.equal(existsSync(join(out, "made")), false, "the out dirs the failed build made");

  // The loader of x.cjs is x.cjs in the out dir: the entry's own directory would lose it.
  const own = join(out, "own.cjs");
  writeFileSync(own, "// the plugin's own source\n");
  const overwrite = await cli(["code-cache", own, "-o", out, "--cookie", "K=V"]);
  assert.equal(overwrite.code, EXIT.invalid, overwrite.stderr);
  assert.match(
    overwrite.stderr,
    /own\.cjs would be overwritten by its own build: give another --out-dir/,
  );
  assert.equal(readFileSync(own, "utf8"), "// the plugin's own source\n");

  const missing = await cli(["code-cache", join(out, "nope.js"), "-o", out, "--cookie", "K=V"]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /no such file: .*nope\.js/);
});

test("the manifest pins the code cache: init lists it, and an installed plugin whose cache changed is refused", async () => {
  const copy = await pluginDirOfBuild();
  const manifest = JSON.parse(readFileSync(join(copy, "plugin.json"), "utf8")) as {
    files: Record<string, string>;
  };
  assert.ok("code-cache-plugin.code-cache" in manifest.files, Object.keys(manifest.files).join());
  const keys = keysOnDisk();
  const signed = await cli(["sign", copy, "--key", keys.privateKeyFile]);
  assert.equal(signed.code, 0, signed.stderr);
  const cacheFile = join(copy, "code-cache-plugin.code-cache");
  const data = readFileSync(cacheFile);
  writeFileSync(
    cacheFile,
    Buffer.concat([data.subarray(0, -1), Buffer.from([~data.at(-1)! & 0xff])]),
  );
  const { flags } = cliHost();
  const installed = await cli([...flags, "--trusted-keys", keys.trustedDir, "install", copy]);
  assert.notEqual(installed.code, 0);
  assert.match(
    installed.stderr,
    /file code-cache-plugin\.code-cache has digest sha256:[a-f0-9]{64}, but the manifest expects/,
  );
});

test("a plugin installed from a manifest listing its code cache and started by the manager runs with that cache (real manager, real subprocess)", async () => {
  const copy = await pluginDirOfBuild();
  const keys = keysOnDisk();
  const pluginsDir = await signAndInstall(copy, keys);
  const logger = new MemoryLogger();
  const manager = new PluginManager({
    directories: [pluginsDir],
    trustedKeysDir: keys.trustedDir,
    runDir: join(tempDir("code-cache-run-"), "run"),
    logger,
  });
  try {
    await manager.scan();
    const kv = manager.open("kv", { handshake, plugins: { kv: KV } }).dispense("kv");
    await kv.put({ key: "k", value: encode("v") });
    assert.equal(decode((await kv.get({ key: "k" })).value), "v");
    assert.deepEqual(fixtureLine(logger), { mark: MARK, cache: "used" });
  } finally {
    await manager.close();
  }
});

test("the loader writes its cache through a file of its own: a link planted at its partial name is removed, not followed (loader only, a hand-written bundle)", async () => {
  const out = tempDir("code-cache-link-");
  const names = codeCacheFiles("linked");
  writeFileSync(join(out, names.bundle), "module.exports = 1;\n");
  writeFileSync(join(out, names.loader), codeCacheLoader(names));
  const victim = join(tempDir("code-cache-victim-"), "victim");
  writeFileSync(victim, "not the cache's\n");
  // Preloaded into the loader's process, the only one that knows the pid it names the partial by.
  const plant = join(out, "plant.cjs");
  const partial = `${JSON.stringify(join(out, names.cache))} + "." + process.pid + ".partial"`;
  writeFileSync(plant, `require("node:fs").symlinkSync(${JSON.stringify(victim)}, ${partial});\n`);
  const { stderr } = await promisify(execFile)(
    process.execPath,
    ["--require", plant, join(out, names.loader)],
    { env: { PATH: process.env.PATH, CONNECT_PLUGIN_CODE_CACHE: "write" } },
  );
  assert.equal(stderr, "");
  assert.equal(readFileSync(victim, "utf8"), "not the cache's\n");
  assert.ok(lstatSync(join(out, names.cache)).isFile(), "the cache is a file, not the link");
  assert.deepEqual(
    readdirSync(out).sort(),
    [names.bundle, names.loader, names.cache, "plant.cjs"].sort(),
  );
  assert.equal(await cacheState(join(out, names.loader)), "used");
});

test("the build stops a check start that does not end by --timeout and says so", async () => {
  const out = tempDir("code-cache-hang-");
  // Waits (without the CPU) only when started without the cookie, as the check starts it.
  writeFileSync(
    join(out, "hang.mjs"),
    `if (process.env.${handshake.magicCookieKey} === undefined) ` +
      "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);\n",
  );
  const entry = join(out, "hangs-by-hand.mjs");
  writeFileSync(entry, `import "./hang.mjs";\nimport ${JSON.stringify(plugin)};\n`);
  const res = await cli([
    "code-cache",
    entry,
    "-o",
    join(out, "bundle"),
    "--handshake",
    shared,
    "--timeout",
    "8000",
  ]);
  assert.equal(res.code, EXIT.platform, res.stderr);
  assert.match(
    res.stderr,
    /started without its cookie, .*hangs-by-hand\.cjs did not exit in 8000 ms \(--timeout\) and was stopped/,
  );
  // The cache made by the launch before the check stays, for this bundle (its CRC-32 first).
  const names = codeCacheFiles("hangs-by-hand");
  const made = readFileSync(join(out, "bundle", names.cache));
  assert.equal(made.readUInt32BE(0), crc32(readFileSync(join(out, "bundle", names.bundle))));
  assert.ok(made.length > 4 + 1024, `a cache of ${made.length} bytes`);
  assert.match(res.stderr, /its loader, bundle and code cache stay/);
});

/**
 * Runs `code-cache` on a plugin that, started with its cookie (the launch)
 * or without (the check), writes its pid to a file and hangs before
 * serve(); sends `signal` to the CLI then, and returns how the CLI ended,
 * what it wrote, and the plugin's pid. `out` is the --out-dir.
 */
async function interruptedBuild(
  step: "launch" | "check",
  signal: NodeJS.Signals,
  out: (work: string) => string,
) {
  const work = tempDir(`code-cache-${step}-${signal}-`);
  const started = join(work, "started");
  writeFileSync(
    join(work, "hang.mjs"),
    `import { writeFileSync } from "node:fs";\n` +
      `if ((process.env.${handshake.magicCookieKey} === undefined) === ${step === "check"}) {\n` +
      `  writeFileSync(${JSON.stringify(started)}, String(process.pid));\n` +
      "  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);\n}\n",
  );
  const entry = join(work, "interrupted.mjs");
  writeFileSync(entry, `import "./hang.mjs";\nimport ${JSON.stringify(plugin)};\n`);
  const outDir = out(work);
  const { child, exited, stderr } = startCli([
    "code-cache",
    entry,
    "-o",
    outDir,
    "--handshake",
    shared,
    "--timeout",
    "60000",
  ]);
  await waitFor(`the ${step} start`, () => existsSync(started), 60_000);
  const pid = Number(readFileSync(started, "utf8"));
  child.kill(signal);
  return { ended: await exited, stderr: stderr(), outDir, pid };
}

test("code-cache interrupted (SIGINT) during the check start: the CLI dies of SIGINT and leaves none of the build's files, nor the out dir it made", async () => {
  const { ended, stderr, outDir } = await interruptedBuild("check", "SIGINT", (w) =>
    join(w, "out"),
  );
  assert.deepEqual(ended, [null, "SIGINT"], stderr);
  assert.equal(existsSync(outDir), false, "the out dir the build made is gone");
});

test("code-cache interrupted (SIGINT) during its launch: the CLI dies of SIGINT, the plugin is stopped, and neither files nor the out dirs it made stay", async () => {
  const { ended, stderr, outDir, pid } = await interruptedBuild("launch", "SIGINT", (w) =>
    join(w, "made", "out"),
  );
  assert.deepEqual(ended, [null, "SIGINT"], stderr);
  assert.equal(existsSync(join(outDir, "..")), false, "the folders the build made are gone");
  assert.equal(isRunning(pid), false, "the launched plugin was stopped");
});

test("code-cache interrupted (SIGTERM, SIGHUP) during its launch: an out dir that was there stays, with what it held", async () => {
  for (const signal of ["SIGTERM", "SIGHUP"] as const) {
    const { ended, stderr, outDir, pid } = await interruptedBuild("launch", signal, (w) => {
      writeFileSync(join(w, "keep.txt"), "not the build's");
      return w;
    });
    assert.deepEqual(ended, [null, signal], stderr);
    assert.deepEqual(readdirSync(outDir).sort(), [
      "hang.mjs",
      "interrupted.mjs",
      "keep.txt",
      "started",
    ]);
    assert.equal(isRunning(pid), false, "the launched plugin was stopped");
  }
});

/**
 * A hand-written bundle that reports what a CommonJS main file sees, run
 * once as `node <bundle>` and through the loader (writing the cache, with
 * it, and with source maps on): the loader must change nothing the bundle
 * can see but the compile. `process.argv[1]` is the file node was given,
 * the loader (left out here). `later` is how it waits: a dynamic import()
 * or a promise.
 */
const parityBundle = (later: string) => `#!/usr/bin/env node
"use strict";
if (process.env.THROW_AT_TOP) throw new Error("thrown at the top level");
const seen = {
  isMain: require.main === module,
  mainFilename: require.main.filename,
  filename: module.filename,
  __filename,
  __dirname,
  thisIsExports: this === module.exports,
  paths: Array.isArray(module.paths),
  resolves: require.resolve("./beside.cjs"),
};
module.exports = { exported: true };
const specifier = "node:" + "os";
${later}.then(
  (os) => process.stdout.write(JSON.stringify({ ...seen, later: typeof os.cpus, exported: require.main.exports })),
  (error) => process.stdout.write(JSON.stringify({ ...seen, later: error.code })),
);
`;

for (const [later, cache] of [
  ["Promise.resolve(require(specifier))", "used"],
  // Node 20 loses import() in code compiled from a cache: none is written.
  ["import(specifier)", "absent"],
] as const) {
  test(`the loader runs its bundle as node runs the bundle itself: require.main, module, __filename, a top-level throw; later: ${later}, the cache ${cache} (loader only, a hand-written bundle)`, async () => {
    const out = tempDir("code-cache-parity-");
    const names = codeCacheFiles("parity");
    writeFileSync(join(out, names.bundle), parityBundle(later));
    writeFileSync(join(out, "beside.cjs"), "");
    writeFileSync(join(out, names.loader), codeCacheLoader(names));
    const run = (args: string[], env: Record<string, string> = {}) =>
      promisify(execFile)(process.execPath, args, {
        env: { PATH: process.env.PATH, ...env },
      }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    const direct = await run([join(out, names.bundle)]);
    const expected = JSON.parse(direct.stdout) as Record<string, unknown>;
    assert.equal(expected.isMain, true);
    assert.equal(expected.later, "function");
    const loader = join(out, names.loader);
    const ways: [string, string[], Record<string, string>][] = [
      ["writing the cache", [loader], { CONNECT_PLUGIN_CODE_CACHE: "write" }],
      ["after the write", [loader], {}],
      ["with source maps on", ["--enable-source-maps", loader], {}],
    ];
    for (const [way, args, env] of ways) {
      const got = await run(args, env);
      assert.deepEqual(JSON.parse(got.stdout), expected, way);
      assert.doesNotMatch(got.stderr, /Warning/, way);
    }
    assert.equal(await cacheState(loader), cache);
    const thrown = await run([join(out, names.bundle)], { THROW_AT_TOP: "1" });
    for (const args of [[loader], ["--enable-source-maps", loader]]) {
      const got = await run(args, { THROW_AT_TOP: "1" });
      assert.equal((got as { code?: number }).code, (thrown as { code?: number }).code);
      assert.match(got.stderr, /Error: thrown at the top level\n\s+at .*parity\.bundle\.cjs:3/);
    }
  });
}

test("a plugin whose bundle calls import() is built without a cache, with a warning, and serves through its loader", async () => {
  const out = tempDir("code-cache-import-");
  const entry = join(out, "importing.mjs");
  writeFileSync(
    entry,
    `import ${JSON.stringify(plugin)};\nconst os = "node:" + "os";\nvoid import(os);\n`,
  );
  const res = await cli(["code-cache", entry, "-o", out, "--handshake", shared, "--json"]);
  assert.equal(res.code, 0, res.stderr);
  const json = JSON.parse(res.stdout) as { state: string; bytes: number; warnings: string[] };
  assert.equal(json.state, "absent");
  assert.equal(json.bytes, 0);
  assert.match(json.warnings.join("\n"), /the bundle calls import\(\).*no cache was written/);
  assert.ok(!readdirSync(out).includes("importing.code-cache"));
  assert.deepEqual(await serveAndStop([join(out, "importing.cjs")]), {
    mark: MARK,
    cache: "absent",
  });
  const text = await cli(["code-cache", entry, "-o", out, "--handshake", shared]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^warning: the bundle calls import\(\)/);
  assert.doesNotMatch(text.stdout, /found the cache absent|code cache of/);
  assert.match(text.stdout, /wrote .*importing\.cjs, its bundle and no code cache; launch it with/);
});
