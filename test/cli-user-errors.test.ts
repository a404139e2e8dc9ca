/**
 * What a user can get wrong on the command line, and the one line they get
 * back: a path that does not exist or is a dangling or looping link, a
 * plugins directory that is a file, a key file that is missing or not a key,
 * a manifest or lockfile with a syntax error (line and column), a lockfile of
 * the wrong shape. Each runs the real CLI in a fresh temporary directory.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { tempDir } from "./helpers.js";
import { cli } from "./oci-helpers.js";

/** A plugin directory made by `init` (unsigned): `<work>/kv` with kv.mjs. */
async function initPlugin(work: string): Promise<string> {
  const dir = join(work, "kv");
  mkdirSync(dir);
  writeFileSync(join(dir, "kv.mjs"), "export {};\n");
  const init = await cli(["init", dir, "--entry", "kv.mjs", "--plugin", "kv=example.kv.v1.KV"]);
  assert.equal(init.code, 0, init.stderr);
  return dir;
}

describe("CLI user errors", () => {
  test("a path that does not exist is named (exit 4), never tried as a registry", async () => {
    const work = tempDir("cp-usererr-");
    const flags = ["--dir", join(work, "plugins"), "--lockfile", join(work, "lock.json")];
    for (const args of [
      ["install", "./nope"],
      ["inspect", "./nope"],
      ["verify", "./nope"],
      ["install", "../nope/kv"],
      ["install", "kv-1.0.0.tar.gz"],
    ]) {
      const r = await cli([...flags, ...args], {}, work);
      assert.deepEqual(
        [r.code, r.stderr],
        [4, `connect-plugin: ${args[1]} does not exist\n`],
        args.join(" "),
      );
    }
  });

  test("a dangling or looping symbolic link is named as such (exit 4)", async () => {
    const work = tempDir("cp-usererr-");
    symlinkSync("missing", join(work, "dangling"));
    symlinkSync("loop-b", join(work, "loop-a"));
    symlinkSync("loop-a", join(work, "loop-b"));
    const dangling = await cli(["install", "dangling"], {}, work);
    assert.deepEqual(
      [dangling.code, dangling.stderr],
      [4, "connect-plugin: dangling is a symbolic link to a missing file\n"],
    );
    const loop = await cli(["inspect", "loop-a"], {}, work);
    assert.deepEqual(
      [loop.code, loop.stderr],
      [4, "connect-plugin: loop-a is a symbolic link loop\n"],
    );
  });

  test("--dir naming a file: exit 7 naming it, not an internal error", async () => {
    const work = tempDir("cp-usererr-");
    const file = join(work, "plugins");
    writeFileSync(file, "");
    for (const command of ["list", "verify"]) {
      const r = await cli(["--dir", file, command]);
      assert.deepEqual(
        [r.code, r.stderr],
        [7, `connect-plugin: plugins directory ${file} is not a directory\n`],
        command,
      );
    }
  });

  test("--trusted-keys naming a file: exit 7 naming it, not an internal error", async () => {
    const work = tempDir("cp-usererr-");
    const dir = await initPlugin(work);
    const flags = ["--dir", join(work, "plugins"), "--lockfile", join(work, "lock.json")];
    const installed = await cli([...flags, "--allow-unsigned", "install", dir]);
    assert.equal(installed.code, 0, installed.stderr);
    const file = join(work, "kv", "kv.mjs");
    const r = await cli([...flags, "--trusted-keys", file, "verify"]);
    assert.deepEqual(
      [r.code, r.stderr],
      [7, `connect-plugin: trusted keys directory ${file} is not a directory\n`],
    );
  });

  test("keygen --out in a directory that does not exist: exit 4, nothing written", async () => {
    const work = tempDir("cp-usererr-");
    const missing = join(work, "no-such-dir");
    const r = await cli(["keygen", "--out", join(missing, "release")]);
    assert.deepEqual(
      [r.code, r.stderr],
      [
        4,
        `connect-plugin: directory ${missing} does not exist (--out ${join(missing, "release.key")})\n`,
      ],
    );
    assert.equal(existsSync(missing), false);
  });

  test("sign with a missing, non-PEM or directory --key names it; --update-files writes nothing first", async () => {
    const work = tempDir("cp-usererr-");
    const dir = await initPlugin(work);
    const manifest = readFileSync(join(dir, "plugin.json"), "utf8");
    writeFileSync(join(dir, "kv.mjs"), "export const changed = 1;\n");
    const missing = await cli(["sign", dir, "--key", "nokey", "--update-files"], {}, work);
    assert.deepEqual([missing.code, missing.stderr], [4, "connect-plugin: nokey does not exist\n"]);
    assert.equal(readFileSync(join(dir, "plugin.json"), "utf8"), manifest);
    writeFileSync(join(dir, "kv.mjs"), "export {};\n");
    writeFileSync(join(work, "bad.key"), "not a key\n");
    const garbage = await cli(["sign", dir, "--key", "bad.key"], {}, work);
    assert.equal(garbage.code, 7);
    assert.match(
      garbage.stderr,
      /^connect-plugin: bad\.key is not a PEM private key \(.*\); make one with connect-plugin keygen\n$/,
    );
    const directory = await cli(["sign", dir, "--key", "."], {}, work);
    assert.deepEqual(
      [directory.code, directory.stderr],
      [7, "connect-plugin: --key . is not a file\n"],
    );
    assert.equal(existsSync(join(dir, "plugin.sig")), false);
  });

  test("pack: -o in a missing directory or onto a directory is named; a missing file is exit 3, no archive left", async () => {
    const work = tempDir("cp-usererr-");
    const dir = await initPlugin(work);
    const missing = join(work, "no-such-dir", "kv.tar.gz");
    const noDir = await cli(["pack", dir, "-o", missing]);
    assert.deepEqual(
      [noDir.code, noDir.stderr],
      [
        4,
        `connect-plugin: directory ${join(work, "no-such-dir")} does not exist (-o ${missing})\n`,
      ],
    );
    const onDir = await cli(["pack", dir, "-o", work]);
    assert.deepEqual(
      [onDir.code, onDir.stderr],
      [7, `connect-plugin: -o ${work} is a directory, not a file\n`],
    );
    rmSync(join(dir, "kv.mjs"));
    const gone = await cli(["pack", "kv"], {}, work);
    assert.deepEqual(
      [gone.code, gone.stderr],
      [3, `connect-plugin: plugin "kv" 0.1.0: file kv.mjs is missing from kv\n`],
    );
    assert.deepEqual(readdirSync(work).sort(), ["kv"]);
  });

  test("a manifest with a syntax error says line and column on one line (JSON and YAML)", async () => {
    const work = tempDir("cp-usererr-");
    for (const [file, text, where] of [
      ["plugin.json", '{\n  "name": "kv",\n  version: 1\n}\n', "JSON \\(.* at line 3, column 3"],
      ["plugin.yaml", "name: kv\n  version: : 1\n", "YAML \\(.* at line 1, column \\d+"],
    ] as const) {
      const dir = join(work, file);
      mkdirSync(dir);
      writeFileSync(join(dir, file), text);
      const r = await cli(["inspect", `./${file}`], {}, work);
      assert.equal(r.code, 7);
      assert.match(
        r.stderr,
        new RegExp(`^connect-plugin: invalid manifest ${file}/${file}: not valid ${where}\\)\n$`),
      );
    }
  });

  test("a corrupt lockfile: exit 7 with line and column, or its wrong shape named", async () => {
    const work = tempDir("cp-usererr-");
    const lock = join(work, "lock.json");
    // The lockfile is read before the registry is asked: port 1 is never reached.
    const install = ["--lockfile", lock, "--registry", "127.0.0.1:1", "install", "kv:1.0.0"];
    writeFileSync(lock, '{\n  "lockfileVersion": 1,\n');
    const cut = await cli(install);
    assert.equal(cut.code, 7);
    assert.match(cut.stderr, /^connect-plugin: lockfile .* is not JSON: .* at line 3, column 1\n$/);
    writeFileSync(lock, '{"lockfileVersion": 1, "plugins": null}');
    const shape = await cli(install);
    assert.deepEqual(
      [shape.code, shape.stderr],
      [7, `connect-plugin: lockfile ${lock} is not a version 1 connect-plugin lockfile\n`],
    );
  });
});

describe("CLI user errors: options and commands", () => {
  test("a --timeout beyond setTimeout's range is refused, not turned into 1 ms (conformance, snapshot, code-cache)", async () => {
    const work = tempDir("cp-usererr-");
    const conformance = await cli([
      "conformance",
      "--cookie",
      "K=V",
      "--timeout",
      "1e12",
      "--",
      "sleep",
      "1",
    ]);
    const expected = `connect-plugin: --timeout must be a positive number of milliseconds, not "1e12" (at most 2147483647)\n`;
    assert.deepEqual([conformance.code, conformance.stdout, conformance.stderr], [7, "", expected]);
    writeFileSync(join(work, "entry.mjs"), "export {};\n");
    const snapshot = await cli(["snapshot", "entry.mjs", "--timeout", "1e12"], {}, work);
    assert.deepEqual([snapshot.code, snapshot.stderr], [7, expected]);
    assert.equal(existsSync(join(work, "entry.blob")), false);
    const cache = await cli(
      ["code-cache", "entry.mjs", "--cookie", "K=V", "--timeout", "1e12"],
      {},
      work,
    );
    assert.deepEqual([cache.code, cache.stderr], [7, expected]);
    assert.equal(existsSync(join(work, "dist")), false);
  });

  test("conformance names the option that is wrong, with its value", async () => {
    for (const [args, message] of [
      [["--cookie", "KV"], `--cookie must be KEY=VALUE, not "KV"`],
      [
        ["--cookie", "K=V", "--protocol-version", "0"],
        `--protocol-version must be a positive integer, not "0"`,
      ],
    ] as const) {
      const r = await cli(["conformance", ...args, "--", "true"]);
      assert.deepEqual([r.code, r.stderr], [7, `connect-plugin: ${message}\n`], args.join(" "));
    }
  });

  test("conformance on a command that does not exist or cannot run: exit 4 naming it, no checks run", async () => {
    const work = tempDir("cp-usererr-");
    writeFileSync(join(work, "plugin"), "#!/bin/sh\n", { mode: 0o644 });
    for (const [command, message] of [
      [join(work, "missing"), `${join(work, "missing")} does not exist`],
      ["no-such-plugin-program", `command "no-such-plugin-program" not found on $PATH`],
      ["./plugin", "./plugin is not an executable file"],
    ]) {
      const r = await cli(["conformance", "--cookie", "K=V", "--", command as string], {}, work);
      assert.deepEqual(
        [r.code, r.stdout, r.stderr],
        [4, "", `connect-plugin: ${message}\n`],
        command,
      );
    }
  });
});

describe("CLI user errors: status", () => {
  test("--port (or --host, --allow-remote, --token) without --web: exit 7, not a silent list", async () => {
    const work = tempDir("cp-usererr-");
    const dir = ["--dir", join(work, "plugins")];
    const port = await cli([...dir, "status", "--port", "8080"]);
    assert.deepEqual(
      [port.code, port.stdout, port.stderr],
      [7, "", "connect-plugin: --port is for --web only: add --web to serve the status page\n"],
    );
    const remote = await cli([...dir, "status", "--host", "0.0.0.0", "--allow-remote"]);
    assert.deepEqual(
      [remote.code, remote.stderr],
      [
        7,
        "connect-plugin: --host and --allow-remote are for --web only: add --web to serve the status page\n",
      ],
    );
    const empty = await cli([...dir, "status", "--web", "--port", ""]);
    // An empty --port was Number("") = 0: any free port.
    assert.deepEqual(
      [empty.code, empty.stderr],
      [7, "connect-plugin: --port must be 0 to 65535, got \n"],
    );
  });

  test("--from with --web: exit 7 naming both, not --web silently dropped", async () => {
    const work = tempDir("cp-usererr-");
    // Nothing listens there: the refusal comes before any fetch.
    const both = await cli([
      "--dir",
      join(work, "plugins"),
      "status",
      "--from",
      "http://127.0.0.1:9/",
      "--web",
    ]);
    assert.deepEqual(
      [both.code, both.stdout, both.stderr],
      [
        7,
        "",
        "connect-plugin: --from and --web do not go together: --from shows the plugins a running host manages, --web serves a page of the plugins installed here\n",
      ],
    );
  });
});

describe("CLI user errors: references and --platform", () => {
  test("a malformed OCI reference is exit 7 naming what is wrong, the same in pull, install, inspect and push", async () => {
    const work = tempDir("cp-usererr-");
    const dir = await initPlugin(work);
    const flags = ["--dir", join(work, "plugins"), "--cache", join(work, "cache")];
    for (const [ref, why] of [
      ["localhost:1/kv:bad^tag", 'bad tag "bad^tag"'],
      ["localhost:1/kv@sha256:zz", 'bad digest "sha256:zz"'],
      ["localhost:1/KV:1.0.0", 'bad repository "KV"'],
    ] as const) {
      for (const args of [
        ["pull", ref],
        ["install", ref],
        ["inspect", ref],
        ["push", dir, ref],
      ]) {
        const r = await cli([...flags, ...args], {}, work);
        assert.deepEqual(
          [r.code, r.stderr],
          [7, `connect-plugin: invalid OCI reference "${ref}": ${why}\n`],
          args.join(" "),
        );
      }
    }
    assert.equal(existsSync(join(work, "cache")), false, "nothing pulled");
  });

  test("--platform that is not os/arch is refused (exit 7, naming the value) before any network or file work", async () => {
    const work = tempDir("cp-usererr-");
    const dir = await initPlugin(work);
    const cache = join(work, "cache");
    // Port 1 on loopback: had the command gone to the registry, exit 5 (unreachable).
    for (const args of [
      ["pull", "localhost:1/kv:1.0.0"],
      ["install", "localhost:1/kv:1.0.0"],
      ["inspect", "localhost:1/kv:1.0.0"],
      ["--allow-unsigned", "verify", dir],
      ["--allow-unsigned", "install", dir],
    ]) {
      for (const platform of ["bogus", "Linux/AMD64", "linux/amd64/v8"]) {
        const r = await cli(
          ["--dir", join(work, "plugins"), "--cache", cache, "--platform", platform, ...args],
          {},
          work,
        );
        assert.deepEqual(
          [r.code, r.stderr],
          [
            7,
            `connect-plugin: --platform must be os/arch in OCI names, e.g. linux/amd64 or darwin/arm64, not "${platform}"\n`,
          ],
          `${args.join(" ")} --platform ${platform}`,
        );
      }
    }
    assert.equal(existsSync(cache), false, "nothing pulled");
    assert.equal(existsSync(join(work, "plugins")), false, "nothing installed");
  });

  test("init --platforms with an entry that is not os/arch is refused (exit 7) naming --platforms and the entry; no plugin.json", async () => {
    const dir = join(tempDir("cp-usererr-"), "kv");
    mkdirSync(dir);
    writeFileSync(join(dir, "kv.mjs"), "export {};\n");
    const init = (platforms: string): ReturnType<typeof cli> =>
      cli([
        "init",
        dir,
        "--entry",
        "kv.mjs",
        "--plugin",
        "kv=example.kv.v1.KV",
        "--platforms",
        platforms,
      ]);
    for (const [list, bad] of [
      ["Bogus", "Bogus"],
      ["linux/amd64, linux/arm64/v8", "linux/arm64/v8"],
      ["linux/amd64,", ""],
    ] as const) {
      const r = await init(list);
      assert.deepEqual(
        [r.code, r.stderr],
        [
          7,
          `connect-plugin: --platforms must be os/arch in OCI names, e.g. linux/amd64 or darwin/arm64, not ${JSON.stringify(bad)}\n`,
        ],
        list,
      );
      assert.equal(existsSync(join(dir, "plugin.json")), false, list);
    }
    const ok = await init("linux/amd64, darwin/arm64");
    assert.equal(ok.code, 0, ok.stderr);
    const manifest = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as {
      entrypoints: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(manifest.entrypoints), ["linux/amd64", "darwin/arm64"]);
  });
});
