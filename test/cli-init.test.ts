/** `connect-plugin init`: the plugin.json it writes, and its messages word for word. */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { cli, cliHost, keysOnDisk, kvPluginDir } from "./oci-helpers.js";

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
    const flags = cliHost().flags;
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
