/**
 * The CLI messages a new user meets, word for word: init's plugin.json, sign
 * on an empty `files`, pack's default archive name, inspect of an archive,
 * the untrusted-key error naming the directory searched, the empty plugins
 * directory, plurals, --json errors on stdout only, and a reinstall.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tempDir } from "./helpers.js";
import { cli, keysOnDisk, kvPluginDir } from "./oci-helpers.js";

function hostFlags(): string[] {
  const host = tempDir("cp-climsg-");
  return [
    "--dir",
    join(host, "plugins"),
    "--lockfile",
    join(host, "lock.json"),
    "--cache",
    join(host, "cache"),
    "--trusted-keys",
    join(host, "trusted-keys"),
  ];
}

describe("connect-plugin init", () => {
  test("writes a valid plugin.json from flags and package.json, which sign and install accept", async () => {
    const dir = await kvPluginDir();
    rmSync(join(dir, "plugin.json"));
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({
        name: "@acme/kv",
        version: "2.1.0",
        description: "A KV store.",
        license: "MIT",
      }),
    );
    const res = await cli([
      "init",
      dir,
      "--entry",
      "kv-plugin.mjs",
      "--plugin",
      "kv=example.kv.v1.KV",
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(
      res.stdout,
      /^wrote .*plugin\.json: kv 2\.1\.0, 2 files, entry kv-plugin\.mjs on linux\/amd64, linux\/arm64, darwin\/amd64, darwin\/arm64\nnext: connect-plugin sign /,
    );
    const manifest = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(manifest).sort(), [
      "description",
      "entrypoints",
      "files",
      "hostVersions",
      "license",
      "name",
      "plugins",
      "protocolVersions",
      "schemaVersion",
      "version",
    ]);
    assert.deepEqual(manifest.plugins, [{ name: "kv", service: "example.kv.v1.KV" }]);
    assert.equal(manifest.license, "MIT");
    assert.deepEqual(Object.keys(manifest.files as object), ["kv-plugin.mjs", "package.json"]);
    const keys = keysOnDisk();
    const signed = await cli(["sign", dir, "--key", keys.privateKeyFile]);
    assert.equal(signed.code, 0, signed.stderr);
    const flags = hostFlags();
    const installed = await cli([...flags, "--trusted-keys", keys.trustedDir, "install", dir]);
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(installed.stdout, /^installed kv 2\.1\.0 into /);
  });

  test("refuses to overwrite, and names what is missing", async () => {
    const dir = await kvPluginDir();
    const init = (...args: string[]) => cli(["init", dir, ...args]);
    const again = await init("--entry", "kv-plugin.mjs", "--plugin", "kv=example.kv.v1.KV");
    assert.equal(again.code, 6);
    assert.equal(
      again.stderr,
      `connect-plugin: ${join(dir, "plugin.json")} exists; use --force to overwrite it\n`,
    );
    const noEntry = await init("--force", "--plugin", "kv=example.kv.v1.KV");
    assert.equal(noEntry.code, 4);
    assert.equal(
      noEntry.stderr,
      `connect-plugin: the entry plugin.js is not in ${dir}; build the plugin first, or name it with --entry\n`,
    );
    const noPlugin = await init("--force", "--entry", "kv-plugin.mjs");
    assert.equal(noPlugin.code, 2);
    assert.match(noPlugin.stderr, /required option '--plugin <name=service>' not specified/);
    const badPlugin = await init("--force", "--entry", "kv-plugin.mjs", "--plugin", "kv");
    assert.equal(badPlugin.code, 7);
    assert.match(
      badPlugin.stderr,
      /--plugin kv: expected NAME=SERVICE, e\.g\. greeter=greeter\.v1\.GreeterService/,
    );
  });
});

describe("CLI messages", () => {
  test("sign on an empty files map suggests --update-files, and --update-files fixes it", async () => {
    const dir = await kvPluginDir();
    const raw = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as Record<
      string,
      unknown
    >;
    writeFileSync(join(dir, "plugin.json"), JSON.stringify({ ...raw, files: {} }));
    const keys = keysOnDisk();
    const res = await cli(["sign", dir, "--key", keys.privateKeyFile]);
    assert.equal(res.code, 7);
    assert.equal(
      res.stderr,
      `connect-plugin: invalid manifest ${join(dir, "plugin.json")}: files: lists no files; fill it in with ` +
        "'connect-plugin sign <dir> --key <key> --update-files' (or 'connect-plugin init')\n",
    );
    assert.doesNotMatch(res.stderr, /must NOT have fewer/);
    const fixed = await cli(["sign", dir, "--key", keys.privateKeyFile, "--update-files"]);
    assert.equal(fixed.code, 0, fixed.stderr);
  });

  test("pack writes <name>-<version>.tar.gz by default (1 file / N files), and inspect reads the archive", async () => {
    const dir = await kvPluginDir();
    const cwd = tempDir("cp-pack-cwd-");
    const packed = await cli(["pack", dir], {}, cwd);
    assert.equal(packed.code, 0, packed.stderr);
    assert.equal(packed.stdout, "wrote kv-1.0.0.tar.gz (2 files)\n");
    assert.ok(existsSync(join(cwd, "kv-1.0.0.tar.gz")));
    const inspected = await cli(["inspect", "kv-1.0.0.tar.gz"], {}, cwd);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(inspected.stdout, /^kv 1\.0\.0 \(Apache-2\.0\) from kv-1\.0\.0\.tar\.gz\n/);
    assert.match(inspected.stdout, /\n {2}file kv-plugin\.mjs sha256:[a-f0-9]{64}/);
    const verified = await cli(["--allow-unsigned", "verify", dir]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /, 1 file\)\n$/);
  });

  test("an untrusted signer's error names the trusted-keys directory searched", async () => {
    const dir = await kvPluginDir();
    const keys = keysOnDisk();
    assert.equal((await cli(["sign", dir, "--key", keys.privateKeyFile])).code, 0);
    const flags = hostFlags();
    const empty = flags[flags.indexOf("--trusted-keys") + 1] as string;
    const res = await cli([...flags, "install", dir]);
    assert.equal(res.code, 3);
    assert.match(
      res.stderr,
      new RegExp(
        `^connect-plugin: plugin "kv" 1\\.0\\.0 is signed by key ${keys.keyId}, which is not a trusted key ` +
          `\\(no trusted keys in ${empty}: put the signer's \\.pub file there\\); nothing was installed`,
      ),
    );
    const other = keysOnDisk();
    const wrong = await cli([...flags, "--trusted-keys", other.trustedDir, "install", dir]);
    assert.match(
      wrong.stderr,
      new RegExp(`\\(trusted keys in ${other.trustedDir}: ${other.keyId}\\)`),
    );
  });

  test("an empty plugins directory reads the same in list and verify", async () => {
    const flags = hostFlags();
    const dir = flags[1] as string;
    const list = await cli([...flags, "list"]);
    const verify = await cli([...flags, "verify"]);
    assert.equal(list.stdout, `no plugins installed in ${dir}\n`);
    assert.equal(verify.stdout, `no plugins installed in ${dir}\n`);
    assert.equal(verify.code, 0);
  });

  test("with --json an error is one JSON document on stdout and nothing on stderr", async () => {
    const flags = hostFlags();
    const missing = await cli([...flags, "--json", "inspect", "/nonexistent/plugin"]);
    assert.equal(missing.code, 4);
    assert.equal(missing.stderr, "");
    const parsed = JSON.parse(missing.stdout) as { error: { kind: string; exitCode: number } };
    assert.deepEqual([parsed.error.kind, parsed.error.exitCode], ["not-found", 4]);
    const usage = await cli(["--json", "install"]);
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, "");
    assert.match(
      (JSON.parse(usage.stdout) as { error: { message: string } }).error.message,
      /missing required argument 'source'/,
    );
    const plain = await cli([...flags, "inspect", "/nonexistent/plugin"]);
    assert.equal(plain.stdout, "");
    assert.match(plain.stderr, /^connect-plugin: /);
  });

  test("installing the same version again says so; another version says what it replaced", async () => {
    const dir = await kvPluginDir();
    const flags = [...hostFlags(), "--allow-unsigned"];
    assert.equal((await cli([...flags, "install", dir])).code, 0);
    const again = await cli([...flags, "install", dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^kv 1\.0\.0 was already installed; reinstalled it into /);
    const json = await cli([...flags, "install", dir, "--json"]);
    assert.equal(
      (JSON.parse(json.stdout) as { installed: { previousVersion: string } }).installed
        .previousVersion,
      "1.0.0",
    );
    const raw = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as Record<
      string,
      unknown
    >;
    writeFileSync(join(dir, "plugin.json"), JSON.stringify({ ...raw, version: "1.1.0" }));
    const newer = await cli([...flags, "install", dir]);
    assert.match(newer.stdout, /^replaced kv 1\.0\.0 with 1\.1\.0 into /);
  });

  test("--help names the shipped docs/cli.md by a path that exists", async () => {
    const help = await cli(["--help"]);
    const path = /Documentation: (\S+)/.exec(help.stdout)?.[1];
    assert.ok(path !== undefined && path.endsWith("docs/cli.md") && existsSync(path), help.stdout);
  });
});
