/**
 * CLI messages a new user meets, word for word: the empty plugins directory,
 * --json errors on stdout only, a reinstall, and where --help says the docs are.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { cli, cliHost, kvPluginDir } from "./oci-helpers.js";

describe("CLI messages, continued", () => {
  test("an empty plugins directory reads the same in list and verify", async () => {
    const flags = cliHost().flags;
    const dir = flags[1] as string;
    const list = await cli([...flags, "list"]);
    const verify = await cli([...flags, "verify"]);
    assert.equal(list.stdout, `no plugins installed in ${dir}\n`);
    assert.equal(verify.stdout, `no plugins installed in ${dir}\n`);
    assert.equal(verify.code, 0);
  });

  test("with --json an error is one JSON document on stdout and nothing on stderr", async () => {
    const flags = cliHost().flags;
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
    const flags = [...cliHost().flags, "--allow-unsigned"];
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
