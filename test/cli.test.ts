import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import * as tar from "tar";
import { hostPlatform } from "../src/manifest/platform.js";
import { tempDir } from "./helpers.js";
import {
  cli,
  cliHost,
  freePort,
  keysOnDisk,
  kvPluginDir,
  startFaultProxy,
  startRegistry,
  type Registry,
} from "./oci-helpers.js";

/** A signed KV plugin, the trusted-keys dir, and a fresh host dir with CLI flags pointing into it. */
async function setup() {
  const keys = keysOnDisk();
  const plugin = await kvPluginDir();
  const signed = await cli(["sign", plugin, "--key", keys.privateKeyFile]);
  assert.equal(signed.code, 0, signed.stderr);
  const { host, flags } = cliHost(keys.trustedDir);
  return { keys, plugin, host, flags };
}

function json<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

describe("connect-plugin CLI", () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry("none");
  });
  after(() => registry.stop());

  test("every command prints --json; list, inspect, install (directory and archive), verify, remove", async () => {
    const { plugin, host, flags } = await setup();
    const empty = await cli([...flags, "list", "--json"]);
    assert.deepEqual(json<{ plugins: unknown[] }>(empty.stdout).plugins, []);
    const inspect = await cli([...flags, "inspect", plugin, "--json"]);
    assert.equal(json<{ manifest: { name: string } }>(inspect.stdout).manifest.name, "kv");
    const archive = join(host, "kv.tar.gz");
    const packed = await cli([...flags, "pack", plugin, "-o", archive, "--json"]);
    assert.deepEqual(json<{ entries: string[] }>(packed.stdout).entries, [
      "plugin.json",
      "plugin.sig",
      "kv-plugin.mjs",
    ]);
    const fromArchive = await cli([...flags, "install", archive, "--json"]);
    assert.equal(fromArchive.code, 0, fromArchive.stderr);
    assert.equal(
      json<{ installed: { name: string; source: { kind: string } } }>(fromArchive.stdout).installed
        .source.kind,
      "archive",
    );
    const fromDir = await cli([...flags, "install", plugin, "--json"]);
    assert.equal(fromDir.code, 0, fromDir.stderr);
    const list = await cli([...flags, "list", "--json"]);
    assert.deepEqual(
      json<{ plugins: { name: string; provides: string[] }[] }>(list.stdout).plugins,
      [
        {
          name: "kv",
          version: "1.0.0",
          description: "The connect-plugin KV example: a key-value store in memory.",
          provides: ["kv"],
        },
      ],
    );
    const verify = await cli([...flags, "verify", "--json"]);
    assert.equal(json<{ verified: { name: string }[] }>(verify.stdout).verified[0]?.name, "kv");
    const removed = await cli([...flags, "remove", "kv", "--json"]);
    assert.deepEqual(json(removed.stdout), { removed: "kv" });
    const again = await cli([...flags, "remove", "kv", "--json"]);
    assert.equal(again.code, 4);
    assert.deepEqual(json(again.stdout), {
      error: {
        kind: "not-found",
        message: `plugin "kv" is not installed in ${join(host, "plugins")}`,
        exitCode: 4,
      },
    });
  });

  test("exit codes: 2 usage, 3 verification, 4 not found, 5 registry, 7 invalid manifest", async () => {
    const { plugin, flags } = await setup();
    assert.equal((await cli(["frobnicate"])).code, 2);
    assert.equal((await cli(["install"])).code, 2);
    // A tampered file: 3, naming the plugin, the file and both digests.
    const original = readFileSync(join(plugin, "kv-plugin.mjs"));
    writeFileSync(
      join(plugin, "kv-plugin.mjs"),
      Buffer.concat([original, Buffer.from("\n// changed\n")]),
    );
    const tampered = await cli([...flags, "install", plugin]);
    assert.equal(tampered.code, 3);
    assert.match(
      tampered.stderr,
      /^connect-plugin: plugin "kv" 1.0.0: file kv-plugin.mjs has digest sha256:[a-f0-9]{64}, but the manifest expects sha256:[a-f0-9]{64}; nothing was installed in .*plugins\n$/,
    );
    assert.equal(existsSync(join(flags[1] as string, "kv")), false);
    assert.equal((await cli([...flags, "inspect", "/nonexistent/plugin-dir-or-ref"])).code, 4);
    const closed = await freePort();
    const unreachable = await cli([...flags, "pull", `127.0.0.1:${closed}/plugins/kv:1.0.0`]);
    assert.equal(unreachable.code, 5);
    assert.match(
      unreachable.stderr,
      new RegExp(`cannot reach registry 127.0.0.1:${closed}: .*ECONNREFUSED`),
    );
    // A plugin for another platform only: 8.
    const raw = JSON.parse(readFileSync(join(plugin, "plugin.json"), "utf8")) as {
      entrypoints: Record<string, unknown>;
    };
    raw.entrypoints = { "plan9/mips": raw.entrypoints["linux/amd64"] };
    const other = tempDir("cp-other-");
    writeFileSync(join(other, "plugin.json"), JSON.stringify(raw));
    writeFileSync(join(other, "kv-plugin.mjs"), original);
    const wrong = await cli([...flags, "--allow-unsigned", "install", other]);
    assert.equal(wrong.code, 8, wrong.stderr);
    assert.match(
      wrong.stderr,
      new RegExp(
        `plugin "kv" 1.0.0 has no entrypoint for ${hostPlatform()} \\(it supports: plan9/mips\\); nothing was installed`,
      ),
    );
    const help = await cli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes: 0 ok, 1 internal error, 2 usage, 3 verification failed/);
    assert.match(help.stdout, /\n9 a required conformance check failed\.\n/);
    const badDir = tempDir("cp-badm-");
    writeFileSync(
      join(badDir, "plugin.json"),
      JSON.stringify({ schemaVersion: 1, name: "Bad Name" }),
    );
    const invalid = await cli([...flags, "inspect", badDir]);
    assert.equal(invalid.code, 7);
    assert.match(invalid.stderr, /name: must match pattern/);
  });

  test("an archive with a path-traversal entry is refused and nothing is installed", async () => {
    const { plugin, host, flags } = await setup();
    const staging = tempDir("cp-evil-");
    mkdirSync(join(staging, "inner"));
    for (const f of ["plugin.json", "plugin.sig", "kv-plugin.mjs"])
      writeFileSync(join(staging, "inner", f), readFileSync(join(plugin, f)));
    writeFileSync(join(staging, "evil.sh"), "echo pwned");
    const archive = join(host, "evil.tar.gz");
    // Entries relative to staging/inner, plus one that climbs out of it.
    await tar.c({ gzip: true, file: archive, cwd: join(staging, "inner"), preservePaths: true }, [
      "plugin.json",
      "plugin.sig",
      "kv-plugin.mjs",
      "../evil.sh",
    ]);
    const res = await cli([...flags, "install", archive]);
    assert.equal(res.code, 3, res.stderr);
    assert.match(
      res.stderr,
      /archive .*evil.tar.gz has unsafe entries, nothing was installed: "..\/evil.sh" \(climbs out of the plugin directory \(..\)\)/,
    );
    assert.deepEqual(
      existsSync(join(host, "plugins")) ? readdirSync(join(host, "plugins")) : [],
      [],
    );
  });

  test("install by OCI reference pins the digest in the lockfile and reinstalls exactly that digest", async () => {
    const { plugin, flags } = await setup();
    assert.equal((await cli(["push", plugin, `${registry.host}/pin/kv:stable`])).code, 0);
    const first = await cli([...flags, "install", `${registry.host}/pin/kv:stable`, "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const pinned = json<{ lock: { digest: string } }>(first.stdout).lock.digest;
    // The tag moves to a new version; the lockfile keeps the install reproducible.
    const raw = JSON.parse(readFileSync(join(plugin, "plugin.json"), "utf8")) as {
      version: string;
    };
    raw.version = "1.1.0";
    writeFileSync(join(plugin, "plugin.json"), JSON.stringify(raw));
    const keys = keysOnDisk();
    assert.equal((await cli(["sign", plugin, "--key", keys.privateKeyFile])).code, 0);
    assert.equal((await cli(["push", plugin, `${registry.host}/pin/kv:stable`])).code, 0);
    const again = await cli([...flags, "install", `${registry.host}/pin/kv:stable`, "--json"]);
    assert.equal(again.code, 0, again.stderr);
    const out = json<{ lock: { digest: string; version: string }; pinned: boolean }>(again.stdout);
    assert.equal(out.pinned, true);
    assert.equal(out.lock.digest, pinned);
    assert.equal(out.lock.version, "1.0.0");
    // --update takes the new version, which is signed by a key this host does not trust.
    const updated = await cli([...flags, "install", `${registry.host}/pin/kv:stable`, "--update"]);
    assert.equal(updated.code, 3);
    assert.match(
      updated.stderr,
      /plugin "kv" 1.1.0 is signed by key sha256:[a-f0-9]{64}, which is not a trusted key/,
    );
    assert.match(
      readFileSync(join(flags[1] as string, "kv", "plugin.json"), "utf8"),
      /"version": "1.0.0"/,
    );
  });

  test("pull --json reports whether the signature is valid here, not merely present", async () => {
    const { plugin, flags, keys } = await setup();
    assert.equal((await cli(["push", plugin, `${registry.host}/sigs/kv:1.0.0`])).code, 0);
    const ref = `${registry.host}/sigs/kv:1.0.0`;
    type Pulled = { signed: boolean; signature: string; signedBy: string | null };
    const trusted = await cli([...flags, "pull", ref, "--json"]);
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.deepEqual(
      (({ signed, signature, signedBy }: Pulled) => ({ signed, signature, signedBy }))(
        json<Pulled>(trusted.stdout),
      ),
      { signed: true, signature: "valid", signedBy: keys.keyId },
    );
    const untrusted = await cli([
      ...flags.slice(0, -1),
      tempDir("cp-nokeys-"),
      "pull",
      ref,
      "--json",
    ]);
    assert.equal(untrusted.code, 0, untrusted.stderr);
    assert.equal(json<Pulled>(untrusted.stdout).signed, false);
    assert.equal(json<Pulled>(untrusted.stdout).signature, "untrusted-key");
    // A signature that does not match its manifest (the version changed after signing).
    const raw = JSON.parse(readFileSync(join(plugin, "plugin.json"), "utf8")) as {
      version: string;
    };
    raw.version = "9.9.9";
    writeFileSync(join(plugin, "plugin.json"), JSON.stringify(raw));
    assert.equal((await cli(["push", plugin, `${registry.host}/sigs/kv:bad`])).code, 0);
    const bad = await cli([...flags, "pull", `${registry.host}/sigs/kv:bad`, "--json"]);
    assert.equal(bad.code, 0, bad.stderr);
    assert.deepEqual(
      (({ signed, signature, signedBy }: Pulled) => ({ signed, signature, signedBy }))(
        json<Pulled>(bad.stdout),
      ),
      { signed: false, signature: "invalid", signedBy: null },
    );
  });

  test("one lockfile pin serves every platform: a darwin/arm64 install takes the pinned digest, not the moved tag", async () => {
    const { plugin, flags } = await setup();
    const ref = `${registry.host}/multi/kv:stable`;
    assert.equal((await cli(["push", plugin, ref])).code, 0);
    const first = await cli([...flags, "install", ref, "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const pinned = json<{ lock: { digest: string } }>(first.stdout).lock.digest;
    const raw = JSON.parse(readFileSync(join(plugin, "plugin.json"), "utf8")) as {
      version: string;
    };
    raw.version = "1.1.0";
    writeFileSync(join(plugin, "plugin.json"), JSON.stringify(raw));
    assert.equal((await cli(["push", plugin, ref])).code, 0);
    const other = hostPlatform() === "darwin/arm64" ? "linux/amd64" : "darwin/arm64";
    const second = await cli([...flags, "--platform", other, "install", ref, "--json"]);
    assert.equal(second.code, 0, second.stderr);
    const out = json<{
      lock: { digest: string; version: string; platform: string };
      pinned: boolean;
    }>(second.stdout);
    assert.equal(out.pinned, true);
    assert.equal(out.lock.digest, pinned);
    assert.equal(out.lock.version, "1.0.0");
    assert.equal(out.lock.platform, other);
  });

  test("a bare name resolves in the default registry (--registry)", async () => {
    const { plugin, flags } = await setup();
    assert.equal((await cli(["push", plugin, `${registry.host}/kv:latest`])).code, 0);
    const res = await cli([...flags, "--registry", registry.host, "install", "kv", "--json"]);
    assert.equal(res.code, 0, res.stderr);
    const out = json<{ installed: { source: { reference: string; via: string } } }>(res.stdout);
    assert.deepEqual(out.installed.source, {
      kind: "oci",
      reference: `${registry.host}/kv:latest`,
      via: "default-registry",
    });
    const none = await cli([...flags, "install", "kv"]);
    assert.equal(none.code, 4);
    assert.match(
      none.stderr,
      /cannot find plugin "kv": no such path, not an OCI reference \(registry\/repository\[:tag\]\), no default registry configured/,
    );
  });

  test("a corrupt blob during install: exit 3 with both digests, nothing installed, no lockfile entry", async () => {
    const { plugin, host, flags } = await setup();
    assert.equal((await cli(["push", plugin, `${registry.host}/corrupt/kv:1.0.0`])).code, 0);
    const proxy = await startFaultProxy(registry.host, (req) =>
      req.url?.includes("/blobs/") && req.method === "GET" ? "corrupt" : undefined,
    );
    try {
      const res = await cli([...flags, "install", `${proxy.host}/corrupt/kv:1.0.0`, "--json"]);
      assert.equal(res.code, 3, res.stderr);
      const { error } = json<{ error: { kind: string; message: string } }>(res.stdout);
      assert.equal(error.kind, "verification-failed");
      assert.match(
        error.message,
        /is corrupt: expected digest sha256:[a-f0-9]{64}, got sha256:[a-f0-9]{64}/,
      );
      assert.equal(existsSync(join(host, "lock.json")), false);
      assert.deepEqual(
        existsSync(join(host, "plugins")) ? readdirSync(join(host, "plugins")) : [],
        [],
      );
    } finally {
      await proxy.stop();
    }
  });

  test("progress bars go to stderr on a terminal, and never when not on one", async () => {
    const { plugin } = await setup();
    const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
    const plain = spawnSync(
      process.execPath,
      [main, "push", plugin, `${registry.host}/tty/kv:1.0.0`],
      { encoding: "utf8" },
    );
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(plain.stderr, "");
    // `script` runs the command on a pseudo-terminal.
    const cmd = [process.execPath, main, "push", plugin, `${registry.host}/tty/kv:1.1.0`]
      .map((a) => `'${a}'`)
      .join(" ");
    const tty = execFileSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8" });
    assert.match(tty, /push sha256:[a-f0-9]{12}.*100%/);
  });
});

describe("the lockfile", () => {
  test("concurrent updates through the advisory lock lose no entry and leave no temp or lock file", async () => {
    const { updateLockfile, readLockfile } = await import("../src/manager/lockfile.js");
    const dir = tempDir("cp-lock-");
    const path = join(dir, "lock.json");
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        updateLockfile(path, (lock) => ({
          lockfileVersion: 1,
          plugins: {
            ...lock.plugins,
            [`p${i}`]: {
              reference: `r/p${i}:1`,
              digest: `sha256:${String(i).padStart(64, "0")}`,
              version: "1.0.0",
              platform: "linux/amd64",
              manifestDigest: `sha256:${String(i).padStart(64, "0")}`,
            },
          },
        })),
      ),
    );
    assert.equal(Object.keys(readLockfile(path).plugins).length, 20);
    assert.deepEqual(readdirSync(dir), ["lock.json"]);
  });
});

describe("CLI quirks from the review", () => {
  test("verify with no argument checks every plugin and names each failure; a bare name is the installed plugin", async () => {
    const { plugin, host, flags } = await setup();
    assert.equal((await cli([...flags, "install", plugin])).code, 0);
    const { cpSync } = await import("node:fs");
    const plugins = join(host, "plugins");
    cpSync(join(plugins, "kv"), join(plugins, "zz"), { recursive: true });
    writeFileSync(join(plugins, "zz", "kv-plugin.mjs"), "tampered");
    const all = await cli([...flags, "verify"]);
    assert.equal(all.code, 3);
    assert.match(
      all.stderr,
      /1 of 2 plugins failed verification \(ok: kv\): plugin "kv" 1\.0\.0: file kv-plugin\.mjs has digest sha256:[a-f0-9]{64}, but the manifest expects sha256:[a-f0-9]{64}/,
    );
    // In a directory that has its own ./kv (say, a source checkout), "kv" is the installed one.
    const cwd = tempDir("cp-cwd-");
    mkdirSync(join(cwd, "kv"));
    writeFileSync(join(cwd, "kv", "plugin.json"), "not a manifest");
    const named = await cli([...flags, "verify", "kv", "--json"], {}, cwd);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(
      json<{ verified: { dir: string }[] }>(named.stdout).verified[0]?.dir,
      join(plugins, "kv"),
    );
    const local = await cli([...flags, "verify", "./kv"], {}, cwd);
    assert.equal(local.code, 7, "./kv is the local directory, whose manifest is invalid");
  });

  test("a usage error under --json prints a JSON error with exit code 2", async () => {
    const res = await cli(["--json", "frobnicate"]);
    assert.equal(res.code, 2);
    assert.deepEqual(
      json<{ error: { kind: string; exitCode: number } }>(res.stdout).error.kind,
      "usage",
    );
    assert.match(
      json<{ error: { message: string } }>(res.stdout).error.message,
      /unknown command 'frobnicate'/,
    );
  });
});

describe("archive installs", () => {
  test("files get the installer's owner, not the archive's (checked when the tests run as root)", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root to make and extract an archive with foreign owners");
      return;
    }
    const { plugin, host, flags } = await setup();
    const { chownSync, statSync } = await import("node:fs");
    chownSync(join(plugin, "kv-plugin.mjs"), 1234, 1234);
    const archive = join(host, "owned.tar.gz");
    await tar.c({ gzip: true, file: archive, cwd: plugin, portable: false }, readdirSync(plugin));
    const res = await cli([...flags, "install", archive]);
    assert.equal(res.code, 0, res.stderr);
    const st = statSync(join(host, "plugins", "kv", "kv-plugin.mjs"));
    assert.equal(st.uid, 0, "not the archive's uid 1234");
    assert.equal(st.mode & 0o777, 0o644);
  });
});

describe("the lockfile write after an install", () => {
  test("when the lockfile cannot be written, exit 6 says the plugin was installed but not pinned", async () => {
    const registry = await startRegistry("none");
    try {
      const { plugin, host, flags } = await setup();
      assert.equal((await cli(["push", plugin, `${registry.host}/nolock/kv:1.0.0`])).code, 0);
      writeFileSync(join(host, "not-a-dir"), "");
      const lockfile = join(host, "not-a-dir", "lock.json"); // its parent is a file
      const i = flags.indexOf("--lockfile");
      const args = [...flags.slice(0, i + 1), lockfile, ...flags.slice(i + 2)];
      const res = await cli([...args, "install", `${registry.host}/nolock/kv:1.0.0`]);
      assert.equal(res.code, 6, res.stderr);
      assert.match(
        res.stderr,
        new RegExp(
          `installed kv 1\\.0\\.0 into ${join(host, "plugins", "kv")}, but could not pin it in ${lockfile}: ENOTDIR`,
        ),
      );
      assert.ok(
        existsSync(join(host, "plugins", "kv", "plugin.json")),
        "the install itself stands",
      );
    } finally {
      await registry.stop();
    }
  });
});
