/**
 * CLI messages a new user meets, word for word: sign on an empty `files`,
 * pack's default archive name and plurals, inspect of an archive, and the
 * untrusted-key error naming the directory searched.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tempDir } from "./helpers.js";
import { cli, cliHost, keysOnDisk, kvPluginDir } from "./oci-helpers.js";

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

  test("sign --update-files beside a second manifest names both files and writes nothing", async () => {
    const dir = await kvPluginDir();
    const before = readFileSync(join(dir, "plugin.json"), "utf8");
    writeFileSync(join(dir, "plugin.yaml"), "schemaVersion: 1\n"); // a stale one, say
    const keys = keysOnDisk();
    const res = await cli(["sign", dir, "--key", keys.privateKeyFile, "--update-files"]);
    assert.equal(res.code, 7);
    assert.equal(
      res.stderr,
      `connect-plugin: ${dir} has more than one manifest (plugin.json, plugin.yaml); keep one\n`,
    );
    assert.equal(readFileSync(join(dir, "plugin.json"), "utf8"), before);
    assert.equal(existsSync(join(dir, "plugin.sig")), false);
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
    const flags = cliHost().flags;
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
});
