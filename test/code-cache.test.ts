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
import { cpSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { EXIT } from "../src/cli/exit-codes.js";
import { subprocess } from "../src/index.js";
import { MemoryLogger, decode, encode, isAlive, kvClient, tempDir, waitFor } from "./helpers.js";
import { cli, cliHost, keysOnDisk } from "./oci-helpers.js";

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
 * a graceful exit; returns the `mark` its top-level log line carried.
 */
async function serveAndStop(args: string[]): Promise<unknown> {
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
  return logger.records.find((r) => r.message === "code-cache fixture")?.fields.mark;
}

/** A copy of the built directory, for a test that changes a file in it. */
function copyOfBuild(): string {
  const copy = join(tempDir("code-cache-copy-"), "bundle");
  cpSync(dir, copy, { recursive: true });
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
  assert.equal(await serveAndStop([loader]), MARK);
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
    assert.equal(await serveAndStop([main]), MARK);
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
  assert.equal(await serveAndStop([main]), "bundle, edited!");
});

test("V8 refuses the cache under other V8 flags, or cut short, and the plugin starts as without it; with source maps on it is not read", async () => {
  await built;
  assert.equal(await cacheState(loader, ["--max-semi-space-size=8"]), "rejected");
  assert.equal(await serveAndStop(["--max-semi-space-size=8", loader]), MARK);
  // Node maps stack traces of a required bundle, not of a vm.Script's.
  assert.equal(await cacheState(loader, ["--enable-source-maps"]), "source-maps");
  assert.equal(await serveAndStop(["--enable-source-maps", loader]), MARK);
  const copy = copyOfBuild();
  truncateSync(join(copy, "code-cache-plugin.code-cache"), 4 + 1_000);
  const main = join(copy, "code-cache-plugin.cjs");
  assert.equal(await cacheState(main), "rejected");
  assert.equal(await serveAndStop([main]), MARK);
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

test("the build says what is wrong: no handshake, a wrong cookie, top-level await, a missing entry", async () => {
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
  const tla = await cli(["code-cache", awaiting, "-o", out, "--cookie", "K=V"]);
  assert.notEqual(tla.code, 0);
  assert.match(
    tla.stderr,
    /cannot bundle .*awaiting\.mjs as CommonJS: .*not await serve\(\.\.\.\)/,
  );

  const missing = await cli(["code-cache", join(out, "nope.js"), "-o", out, "--cookie", "K=V"]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /no such file: .*nope\.js/);
});

test("the manifest pins the code cache: init lists it, and an installed plugin whose cache changed is refused", async () => {
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
