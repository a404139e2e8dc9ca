import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { kvPlugin } from "../examples/kv/definition.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { ManagementError } from "../src/manifest/errors.js";
import { PluginError } from "../src/protocol/errors.js";
import { hostPlatform } from "../src/manifest/platform.js";
import { PluginManager } from "../src/manager/manager.js";
import { resolveSource } from "../src/manager/resolver.js";
import { sha256 } from "../src/manifest/digest.js";
import { decode, encode, isAlive, tempDir, waitFor } from "./helpers.js";
import { cli, keysOnDisk, kvPluginDir, startRegistry, type Registry } from "./oci-helpers.js";

function managementError(kind: ManagementError["kind"], pattern: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof ManagementError, `expected a ManagementError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

/** A signed `exec` plugin "marker" in `root`/plugins running `script` (a shell script that never serves). */
async function signedMarker(root: string, script: string) {
  const dir = join(root, "plugins", "marker");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "run.sh"), script, { mode: 0o755 });
  const manifest = {
    schemaVersion: 1,
    name: "marker",
    version: "1.0.0",
    description: "",
    license: "MIT",
    entrypoints: { [hostPlatform()]: { file: "run.sh" } },
    protocolVersions: [1],
    plugins: [{ name: "kv", service: "example.kv.v1.KV" }],
    hostVersions: "*",
    files: { "run.sh": sha256(script) },
  };
  writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest));
  const keys = keysOnDisk();
  const signed = await cli(["sign", dir, "--key", keys.privateKeyFile]);
  assert.equal(signed.code, 0, signed.stderr);
  return { dir, keys };
}

describe("the KV example through a registry and the manager (end to end)", () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry("none");
  });
  after(() => registry.stop());

  test("keygen, sign, push; pull and install elsewhere; verify; run KV through the manager; idle stop; crash restart", async () => {
    const work = tempDir("cp-e2e-");
    const plugin = await kvPluginDir();
    const keygen = await cli(["keygen", "--out", join(work, "release"), "--json"]);
    assert.equal(keygen.code, 0, keygen.stderr);
    const keyId = (JSON.parse(keygen.stdout) as { keyId: string }).keyId;
    const signed = await cli(["sign", plugin, "--key", join(work, "release.key")]);
    assert.equal(signed.code, 0, signed.stderr);
    assert.match(signed.stdout, new RegExp(`signed kv 1.0.0 with key ${keyId}`));
    const pushed = await cli(["push", plugin, `${registry.host}/plugins/kv`, "--json"]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const pushedDigest = (JSON.parse(pushed.stdout) as { digest: string }).digest;
    assert.equal(pushed.stderr, "", "no progress output when stderr is not a terminal");

    // The other side: its own plugins dir, cache, lockfile and trusted keys.
    const host = tempDir("cp-host-");
    mkdirSync(join(host, "trusted"));
    writeFileSync(join(host, "trusted", "release.pub"), readFileSync(join(work, "release.pub")));
    const common = [
      "--dir",
      join(host, "plugins"),
      "--cache",
      join(host, "cache"),
      "--lockfile",
      join(host, "lock.json"),
      "--trusted-keys",
      join(host, "trusted"),
    ];
    const pulled = await cli([...common, "pull", `${registry.host}/plugins/kv:1.0.0`, "--json"]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((JSON.parse(pulled.stdout) as { digest: string }).digest, pushedDigest);
    const installed = await cli([...common, "install", `${registry.host}/plugins/kv:1.0.0`]);
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(
      installed.stdout,
      new RegExp(
        `installed kv 1.0.0 from ${registry.host}/plugins/kv:1.0.0@${pushedDigest} .*signature ok, key ${keyId}`,
      ),
    );
    const lock = JSON.parse(readFileSync(join(host, "lock.json"), "utf8")) as {
      plugins: Record<string, { digest: string }>;
    };
    assert.equal(lock.plugins.kv?.digest, pushedDigest);
    const verified = await cli([...common, "verify", "kv"]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(
      verified.stdout,
      new RegExp(`^ok kv 1.0.0 \\(signature ok, key ${keyId}, 1 file\\)`),
    );

    const events: string[] = [];
    const manager = new PluginManager({
      directories: [join(host, "plugins")],
      trustedKeysDir: join(host, "trusted"),
      idleTimeoutMs: 300,
      restart: { maxRestarts: 2, initialBackoffMs: 20 },
      onEvent: (_name, e) => events.push(e.type),
    });
    try {
      const list = await manager.scan();
      assert.deepEqual(
        list.map((e) => `${e.name}@${e.version}:${e.kind}`),
        ["kv@1.0.0:installed"],
      );
      // What it provides comes from the manifest: nothing was started for it.
      assert.deepEqual(
        manager.describe("kv").provides.map((p) => `${p.name}=${p.service}`),
        ["kv=example.kv.v1.KV"],
      );
      const managed = manager.open("kv", {
        handshake,
        plugins: { kv: KV },
        config: { namespace: "test" },
      });
      assert.equal(managed.state, "idle");
      const kv = managed.dispense("kv");
      // A burst of first calls: one start.
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => kv.put({ key: `k${i}`, value: encode(`v${i}`) })),
      );
      assert.equal(events.filter((e) => e === "started").length, 1);
      assert.equal(decode((await kv.get({ key: "k7" })).value), "v7");
      const firstPid = managed.pid as number;
      assert.ok(isAlive(firstPid));

      // An open stream is work in flight: no idle stop while it runs.
      const abort = new AbortController();
      const seen: string[] = [];
      const watching = (async () => {
        try {
          for await (const e of kv.watch({ key: "k1" }, { signal: abort.signal }))
            seen.push(decode(e.value));
        } catch {
          // aborted below
        }
      })();
      await waitFor("the watch to start", () => seen.length === 1, 10_000);
      assert.equal(managed.inFlight, 1);
      await new Promise((r) => setTimeout(r, 900));
      assert.equal(managed.state, "running", "not stopped while a stream is open");
      assert.equal(managed.pid, firstPid);
      abort.abort();
      await watching;
      assert.equal(managed.inFlight, 0);

      // Idle: stopped after the timeout, with nothing in flight; the next call starts it again.
      await waitFor("the idle stop", () => managed.state === "idle", 10_000);
      assert.ok(events.includes("idle-stop"));
      await waitFor("the idle plugin to exit", () => !isAlive(firstPid), 10_000);
      assert.equal(
        (await kv.get({ key: "k7" })).found,
        false,
        "a fresh process has an empty store",
      );
      assert.ok(events.filter((e) => e === "started").length >= 2);
    } finally {
      await manager.close();
    }

    // A crash: restarted within the budget; calls work again. (A manager
    // without the short idle timeout, so that an idle stop cannot race it.)
    const supervising = new PluginManager({
      directories: [join(host, "plugins")],
      trustedKeysDir: join(host, "trusted"),
      idleTimeoutMs: 0,
      restart: { maxRestarts: 2, initialBackoffMs: 20 },
      onEvent: (_name, e) => events.push(e.type),
    });
    try {
      await supervising.scan();
      const managed = supervising.open("kv", { handshake, plugins: { kv: KV } });
      const kv = managed.dispense("kv");
      await kv.put({ key: "before", value: encode("crash") });
      const secondPid = managed.pid as number;
      process.kill(secondPid, "SIGKILL");
      await waitFor(
        "the crash restart",
        () => managed.state === "running" && managed.pid !== secondPid,
        20_000,
      );
      await kv.put({ key: "after", value: encode("crash") });
      assert.equal(decode((await kv.get({ key: "after" })).value), "crash");
      assert.equal(managed.restarts, 1);
      assert.ok(events.includes("crashed"));
    } finally {
      await supervising.close();
    }
  });
});

describe("the manager's registry and safety", () => {
  test("plugin programs do not carry the manager: the core entry point imports none of it", async () => {
    const { build } = await import("esbuild");
    const result = await build({
      entryPoints: [fileURLToPath(new URL("../examples/kv/plugin.js", import.meta.url))],
      bundle: true,
      platform: "node",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.some((i) => i.includes("src/plugin/serve.js")));
    const manager = inputs.filter((i) =>
      /node_modules\/(ajv|yaml|tar|semver)\/|src\/(manager|oci|manifest)\/|src\/security\/(signing|canonical|digest|plugin-dir)/.test(
        i,
      ),
    );
    assert.deepEqual(manager, []);
  });

  test("a built-in (in-process) plugin sits in the same registry, behind the same interface", async () => {
    const manager = new PluginManager({ directories: [] });
    manager.registerBuiltin("kv", {
      definition: () => kvPlugin(),
      version: "1.0.0",
      description: "built in",
    });
    try {
      await manager.scan();
      assert.deepEqual(
        manager.list().map((e) => `${e.name}:${e.kind}`),
        ["kv:builtin"],
      );
      assert.deepEqual(manager.describe("kv").provides, [
        {
          name: "kv",
          service: "example.kv.v1.KV",
          version: "1.0.0",
          capabilities: ["watch", "bidi"],
        },
      ]);
      const kv = manager.open("kv", { handshake, plugins: { kv: KV } }).dispense("kv");
      await kv.put({ key: "a", value: encode("in process") });
      assert.equal(decode((await kv.get({ key: "a" })).value), "in process");
      // The capabilities query: a short start, the handshake, a close.
      const probed = await manager.probe("kv", { handshake, plugins: { kv: KV } });
      assert.deepEqual(
        probed.map((p) => `${p.name}@${p.version} ${p.capabilities.join(",")}`),
        ["kv@1.0.0 watch,bidi"],
      );
      const seen: string[] = [];
      for await (const r of kv.exchange(
        (async function* () {
          yield { key: "a" };
          yield { key: "b" };
        })(),
      ))
        seen.push(r.found ? decode(r.value) : "-");
      assert.deepEqual(seen, ["in process", "-"]);
    } finally {
      await manager.close();
    }
  });

  test("an installed plugin shadows a built-in of the same name; the resolver order is path, explicit OCI, default registry, built-in", async () => {
    const plugin = await kvPluginDir();
    assert.deepEqual(resolveSource(plugin), { kind: "directory", path: plugin });
    assert.equal(resolveSource("127.0.0.1:5000/plugins/kv:1.0.0").kind, "oci");
    const viaDefault = resolveSource("kv:1.0.0", {
      defaultRegistry: "registry.example.com",
      repositoryPrefix: "plugins",
      builtins: ["kv"],
    });
    assert.ok(
      viaDefault.kind === "oci" &&
        viaDefault.via === "default-registry" &&
        viaDefault.ref.repository === "plugins/kv",
    );
    assert.deepEqual(resolveSource("kv", { builtins: ["kv"] }), { kind: "builtin", name: "kv" });
    assert.throws(
      () => resolveSource("nothing"),
      /cannot find plugin "nothing": no such path, not an OCI reference/,
    );
  });

  test("a tampered plugin never executes; an unsigned one runs only when explicitly allowed", async () => {
    const root = tempDir("cp-tamper-");
    const marker = join(root, "executed");
    const script = `#!/bin/sh\nprintf '%s' "$CONNECT_PLUGIN_CONFIG" > ${marker}\nexit 1\n`;
    const { dir, keys } = await signedMarker(root, script);
    writeFileSync(join(dir, "run.sh"), script.replace("exit 1", "exit 2"));

    const manager = new PluginManager({
      directories: [join(root, "plugins")],
      trustedKeysDir: keys.trustedDir,
    });
    await manager.scan();
    const kv = manager.open("marker", { handshake, plugins: { kv: KV } }).dispense("kv");
    await assert.rejects(
      kv.get({ key: "x" }),
      managementError(
        "verification-failed",
        new RegExp(
          `plugin "marker" 1.0.0: file run.sh has digest sha256:[a-f0-9]{64}, but the manifest expects ${sha256(script)}`,
        ),
      ),
    );
    assert.equal(existsSync(marker), false, "the tampered entrypoint never ran");
    await manager.close();

    // Unsigned: refused by default; run when allowed (it then fails its handshake, but it ran).
    const { rmSync } = await import("node:fs");
    rmSync(join(dir, "plugin.sig"));
    writeFileSync(join(dir, "run.sh"), script);
    const strict = new PluginManager({
      directories: [join(root, "plugins")],
      trustedKeysDir: keys.trustedDir,
    });
    await strict.scan();
    await assert.rejects(
      strict
        .open("marker", { handshake, plugins: { kv: KV } })
        .dispense("kv")
        .get({ key: "x" }),
      managementError("verification-failed", /is unsigned \(no plugin.sig\); refusing to run it/),
    );
    assert.equal(existsSync(marker), false);
    const lax = new PluginManager({
      directories: [join(root, "plugins")],
      allowUnsigned: true,
      startTimeoutMs: 10_000,
    });
    await lax.scan();
    await assert.rejects(
      lax
        .open("marker", { handshake, plugins: { kv: KV }, config: { level: 3 } })
        .dispense("kv")
        .get({ key: "x" }),
      /exited/,
    );
    assert.equal(existsSync(marker), true, "with allowUnsigned the plugin ran");
    assert.equal(
      readFileSync(marker, "utf8"),
      '{"level":3}',
      "the configuration reached the plugin",
    );
    await lax.close();
  });

  test("configuration is validated against the plugin's schema before anything starts", async () => {
    const plugins = tempDir("cp-cfg-");
    const dir = join(plugins, "kv");
    const { cpSync } = await import("node:fs");
    cpSync(await kvPluginDir(), dir, { recursive: true });
    const manager = new PluginManager({ directories: [plugins], allowUnsigned: true });
    await manager.scan();
    assert.throws(
      () =>
        manager.open("kv", {
          handshake,
          plugins: { kv: KV },
          config: { namespace: 42, colour: "red" },
        }),
      managementError(
        "invalid-config",
        /configuration for plugin "kv" is invalid: (namespace: must be string|\(config\): must NOT have additional properties)/,
      ),
    );
    assert.throws(
      () => manager.open("nope", { handshake, plugins: { kv: KV } }),
      managementError("not-found", /no plugin named "nope" \(known: kv; scanned: /),
    );
    await manager.close();
  });

  test("a plugin for another protocol version, or another host version, is refused before it runs", async () => {
    const plugins = tempDir("cp-ver-");
    const { cpSync } = await import("node:fs");
    cpSync(await kvPluginDir(), join(plugins, "kv"), { recursive: true });
    const manager = new PluginManager({
      directories: [plugins],
      allowUnsigned: true,
      hostVersion: "2.0.0",
    });
    await manager.scan();
    await assert.rejects(
      manager
        .open("kv", { handshake, plugins: { kv: KV } })
        .dispense("kv")
        .get({ key: "x" }),
      managementError(
        "incompatible",
        /plugin "kv" 1.0.0 needs a connect-plugin host >=0.1.0 <1.0.0; this host is 2.0.0/,
      ),
    );
    await manager.close();
    const v2 = new PluginManager({ directories: [plugins], allowUnsigned: true });
    await v2.scan();
    await assert.rejects(
      v2
        .open("kv", { handshake: { ...handshake, protocolVersion: 2 }, plugins: { kv: KV } })
        .dispense("kv")
        .get({ key: "x" }),
      managementError(
        "incompatible",
        /plugin "kv" 1.0.0 serves protocol versions 1; this host speaks 2/,
      ),
    );
    await v2.close();
  });

  test("past the restart budget, calls fail with the terminal error; after close(), with 'closed'", async () => {
    const plugins = tempDir("cp-budget-");
    const { cpSync } = await import("node:fs");
    cpSync(await kvPluginDir(), join(plugins, "kv"), { recursive: true });
    const manager = new PluginManager({
      directories: [plugins],
      allowUnsigned: true,
      restart: { maxRestarts: 0 },
    });
    await manager.scan();
    const managed = manager.open("kv", { handshake, plugins: { kv: KV } });
    const kv = managed.dispense("kv");
    await kv.put({ key: "a", value: encode("b") });
    process.kill(managed.pid as number, "SIGKILL");
    await waitFor("the supervisor to give up", () => managed.state === "failed", 20_000);
    await assert.rejects(
      kv.get({ key: "a" }),
      managementError(
        "restart-budget-exhausted",
        /^plugin "kv" crashed 1 time within 60 s, more than its restart budget of 0; not restarting it\. Last exit: the plugin was killed by SIGKILL/,
      ),
    );
    await manager.close();
    const builtin = new PluginManager({ directories: [] });
    builtin.registerBuiltin("kv", { definition: () => kvPlugin() });
    const closing = builtin.open("kv", { handshake, plugins: { kv: KV } }).dispense("kv");
    await closing.put({ key: "a", value: encode("b") });
    await builtin.close();
    await assert.rejects(
      closing.get({ key: "a" }),
      managementError("stopped", /plugin "kv" is closed/),
    );
  });

  test("a directory with an invalid manifest is reported by scan() and not listed", async () => {
    const plugins = tempDir("cp-bad-");
    mkdirSync(join(plugins, "broken"));
    writeFileSync(
      join(plugins, "broken", "plugin.json"),
      JSON.stringify({ schemaVersion: 1, name: "broken" }),
    );
    const manager = new PluginManager({ directories: [plugins] });
    assert.deepEqual(await manager.scan(), []);
    const problem = manager.problems.get(join(plugins, "broken"));
    assert.match(
      problem?.message ?? "",
      /invalid manifest .*broken\/plugin.json: version: is required; .*license: is required/,
    );
  });
});

describe("what runs is what was verified", () => {
  test("an entrypoint swapped back and forth while the plugin starts never runs (the swap race)", async () => {
    const root = tempDir("cp-race-");
    const marker = join(root, "EVIL-RAN");
    const good = "#!/bin/sh\nexit 1\n";
    const evil = `#!/bin/sh\ntouch ${marker}\nexit 1\n`;
    const { dir, keys } = await signedMarker(root, good);
    writeFileSync(join(root, "good"), good, { mode: 0o755 });
    writeFileSync(join(root, "evil"), evil, { mode: 0o755 });
    // The attacker: can write the plugin directory, renames a good and an evil run.sh into place.
    const swapper = spawn(
      "sh",
      [
        "-c",
        `cd ${root}; while :; do cp good t1; mv t1 ${dir}/run.sh; sleep 0.01; ` +
          `cp evil t2; mv t2 ${dir}/run.sh; sleep 0.01; done`,
      ],
      { stdio: "ignore" },
    );
    const runDir = join(tempDir("cp-runroot-"), "run");
    const manager = new PluginManager({
      directories: [join(root, "plugins")],
      trustedKeysDir: keys.trustedDir,
      startTimeoutMs: 10_000,
      runDir,
    });
    let refused = 0;
    let started = 0;
    const other: string[] = [];
    try {
      await manager.scan();
      for (let i = 0; i < 40; i++) {
        try {
          await manager.probe("marker", { handshake, plugins: { kv: KV } });
          other.push("probe succeeded, but neither script is a plugin");
        } catch (e) {
          if (e instanceof ManagementError && e.kind === "verification-failed") refused++;
          // It ran, and exited as the good script does (with code 1, silently).
          else if (
            e instanceof PluginError &&
            e.kind === "exited-before-handshake" &&
            / exited with code 1 before completing its handshake; /.test(e.message)
          )
            started++;
          else other.push(String(e));
        }
      }
    } finally {
      swapper.kill();
      await manager.close();
    }
    assert.deepEqual(other, [], "every probe was refused or ran the verified script");
    assert.equal(existsSync(marker), false, "the unverified script never ran");
    assert.ok(refused > 0, "the swap was seen and refused at least once");
    assert.ok(started > 0, "the verified script did run");
    // It ran from a private copy: 0700 root, the entrypoint 0555.
    assert.equal(statSync(runDir).mode & 0o777, 0o700);
    const copies = readdirSync(runDir).filter((n) => n.startsWith("marker-"));
    assert.equal(copies.length, 1);
    assert.equal(statSync(join(runDir, copies[0] as string, "run.sh")).mode & 0o777, 0o555);
  });

  test("a run directory that is not private is refused", async () => {
    const root = tempDir("cp-open-run-");
    const { keys } = await signedMarker(root, "#!/bin/sh\nexit 1\n");
    const runDir = join(root, "run");
    mkdirSync(runDir, { mode: 0o777 });
    chmodSync(runDir, 0o777);
    const manager = new PluginManager({
      directories: [join(root, "plugins")],
      trustedKeysDir: keys.trustedDir,
      runDir,
    });
    await manager.scan();
    await assert.rejects(
      manager.probe("marker", { handshake, plugins: { kv: KV } }),
      managementError(
        "verification-failed",
        new RegExp(
          `refusing the plugin run directory ${runDir}: it must be a directory owned by this user with mode 0700 \\(it is a directory, owner \\d+, mode 777\\)`,
        ),
      ),
    );
  });

  test("a node plugin does not load node_modules from next to its directory; a node_modules above the run root is refused", async () => {
    const root = tempDir("cp-nodemods-");
    const ran = join(root, "RAN");
    const loaded = join(root, "UNVERIFIED-LOADED");
    const dir = join(root, "plugins", "lazy");
    mkdirSync(dir, { recursive: true });
    const main =
      `import { createRequire } from "node:module";\nimport { writeFileSync } from "node:fs";\n` +
      `writeFileSync(${JSON.stringify(ran)}, "yes");\n` +
      `try { createRequire(import.meta.url)("optional-dep"); } catch {}\nprocess.exit(1);\n`;
    writeFileSync(join(dir, "main.mjs"), main);
    writeFileSync(
      join(dir, "plugin.json"),
      JSON.stringify({
        schemaVersion: 1,
        name: "lazy",
        version: "1.0.0",
        description: "",
        license: "MIT",
        entrypoints: { [hostPlatform()]: { file: "main.mjs", runtime: "node" } },
        protocolVersions: [1],
        plugins: [{ name: "kv", service: "example.kv.v1.KV" }],
        hostVersions: "*",
        files: { "main.mjs": sha256(main) },
      }),
    );
    // An attacker's package where Node's lookup from the plugin directory would find it.
    const dep = join(root, "plugins", "node_modules", "optional-dep");
    mkdirSync(dep, { recursive: true });
    writeFileSync(
      join(dep, "index.js"),
      `require("node:fs").writeFileSync(${JSON.stringify(loaded)}, "yes");\n`,
    );
    const runParent = tempDir("cp-runparent-");
    const manager = new PluginManager({
      directories: [join(root, "plugins")],
      allowUnsigned: true,
      startTimeoutMs: 10_000,
      runDir: join(runParent, "run"),
    });
    await manager.scan();
    await assert.rejects(manager.probe("lazy", { handshake, plugins: { kv: KV } }), /exited/);
    assert.equal(existsSync(ran), true, "the plugin ran");
    assert.equal(existsSync(loaded), false, "the unverified package was not found");

    mkdirSync(join(runParent, "node_modules"));
    await assert.rejects(
      manager.probe("lazy", { handshake, plugins: { kv: KV } }),
      managementError(
        "verification-failed",
        new RegExp(
          `plugin "lazy" 1.0.0 is a node plugin and would run from ${join(runParent, "run")}, but ${join(runParent, "node_modules")} exists`,
        ),
      ),
    );
  });
});

describe("a node plugin's nodeOptions (docs/plugin-memory.md)", () => {
  test("go before the plugin's file on its Node command line, and the plugin serves", async () => {
    const dir = await kvPluginDir();
    const manifest = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as {
      entrypoints: Record<string, Record<string, unknown>>;
    };
    const options = ["--max-semi-space-size=1", "--single-threaded-gc"];
    for (const entry of Object.values(manifest.entrypoints)) entry["nodeOptions"] = options;
    writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest, null, 2));
    const manager = new PluginManager({
      directories: [join(dir, "..")],
      allowUnsigned: true,
      startTimeoutMs: 20_000,
      runDir: join(tempDir("cp-nodeopts-"), "run"),
    });
    try {
      await manager.scan();
      const managed = manager.open("kv", { handshake, plugins: { kv: KV } });
      const kv = managed.dispense("kv");
      await kv.put({ key: "k", value: encode("v") });
      assert.equal(decode((await kv.get({ key: "k" })).value), "v");
      const argv = readFileSync(`/proc/${managed.pid as number}/cmdline`, "utf8").split("\0");
      assert.deepEqual(argv.slice(1, 4), [...options, argv[3]]);
      assert.match(argv[3] ?? "", /kv-plugin\.mjs$/);
    } finally {
      await manager.close();
    }
  });
});

describe("an exec (shell script) plugin through a real registry", () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry("none");
  });
  after(() => registry.stop());

  test("pushed, pulled and installed, its entrypoint is executable (0755) and it serves KV", async () => {
    const dir = await kvPluginDir();
    const script = `#!/bin/sh\nexec "${process.execPath}" "$(dirname "$0")/kv-plugin.mjs" "$@"\n`;
    writeFileSync(join(dir, "run.sh"), script, { mode: 0o644 }); // modes do not travel anyway
    const manifest = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as {
      entrypoints: Record<string, unknown>;
      files: Record<string, string>;
    };
    manifest.entrypoints = { [hostPlatform()]: { file: "run.sh" } };
    manifest.files["run.sh"] = sha256(script);
    writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest, null, 2));
    const keys = keysOnDisk();
    assert.equal((await cli(["sign", dir, "--key", keys.privateKeyFile])).code, 0);
    const pushed = await cli(["push", dir, `${registry.host}/plugins/shkv`]);
    assert.equal(pushed.code, 0, pushed.stderr);

    const host = tempDir("cp-shhost-");
    const installed = await cli([
      "--dir",
      join(host, "plugins"),
      "--cache",
      join(host, "cache"),
      "--lockfile",
      join(host, "lock.json"),
      "--trusted-keys",
      keys.trustedDir,
      "install",
      `${registry.host}/plugins/shkv:1.0.0`,
    ]);
    assert.equal(installed.code, 0, installed.stderr);
    assert.equal(statSync(join(host, "plugins", "kv", "run.sh")).mode & 0o777, 0o755);
    assert.equal(statSync(join(host, "plugins", "kv", "kv-plugin.mjs")).mode & 0o777, 0o644);

    const manager = new PluginManager({
      directories: [join(host, "plugins")],
      trustedKeysDir: keys.trustedDir,
      idleTimeoutMs: 0,
    });
    try {
      await manager.scan();
      const kv = manager.open("kv", { handshake, plugins: { kv: KV } }).dispense("kv");
      await kv.put({ key: "sh", value: encode("works") });
      assert.equal(decode((await kv.get({ key: "sh" })).value), "works");
    } finally {
      await manager.close();
    }
  });
});

describe("open() of a name that is already open", () => {
  test("the same options share one handle; a different config throws; a closed handle is replaced", async () => {
    const manager = new PluginManager({ directories: [] });
    manager.registerBuiltin("kv", {
      definition: () => kvPlugin(),
      configSchema: { type: "object", properties: { namespace: { type: "string" } } },
    });
    try {
      const first = manager.open("kv", {
        handshake,
        plugins: { kv: KV },
        config: { namespace: "a" },
      });
      assert.equal(
        manager.open("kv", { handshake, plugins: { kv: KV }, config: { namespace: "a" } }),
        first,
      );
      assert.throws(
        () => manager.open("kv", { handshake, plugins: { kv: KV }, config: { namespace: 123 } }),
        managementError(
          "invalid-config",
          /plugin "kv" is already open with a different configuration; close that handle first/,
        ),
      );
      assert.throws(
        () => manager.open("kv", { handshake, plugins: {}, config: { namespace: "a" } }),
        managementError("invalid-config", /already open with a different plugin set/),
      );
      await first.close();
      const second = manager.open("kv", {
        handshake,
        plugins: { kv: KV },
        config: { namespace: "b" },
      });
      assert.notEqual(second, first);
      await second.dispense("kv").put({ key: "k", value: encode("v") });
      assert.equal(decode((await second.dispense("kv").get({ key: "k" })).value), "v");
    } finally {
      await manager.close();
    }
  });
});

describe("resolution with the in-process fallback, against a real registry", () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry("none");
  });
  after(() => registry.stop());

  test("a name missing from the default registry falls back to the built-in; a name it has resolves to OCI; an unreachable registry is an error", async () => {
    const { resolveWithFallback } = await import("../src/manager/resolver.js");
    const { RegistryClient } = await import("../src/oci/registry-client.js");
    const plugin = await kvPluginDir();
    assert.equal((await cli(["push", plugin, `${registry.host}/plugins/kv:1.0.0`])).code, 0);
    const exists = (ref: { registry: string; repository: string; tag?: string }) =>
      new RegistryClient({ registry: ref.registry, attempts: 1 })
        .getManifest(ref.repository, ref.tag ?? "latest")
        .then(() => true);
    const options = {
      defaultRegistry: registry.host,
      repositoryPrefix: "plugins",
      builtins: ["kv", "echo"],
      exists,
    };
    const kv = await resolveWithFallback("kv:1.0.0", options);
    assert.ok(kv.kind === "oci" && kv.via === "default-registry", JSON.stringify(kv));
    assert.deepEqual(await resolveWithFallback("echo:1.0.0", options), {
      kind: "builtin",
      name: "echo",
    });
    // Not a built-in: nothing to fall back to, so the registry is not asked here.
    assert.equal((await resolveWithFallback("other", options)).kind, "oci");
    const { freePort } = await import("./oci-helpers.js");
    await assert.rejects(
      resolveWithFallback("echo", { ...options, defaultRegistry: `127.0.0.1:${await freePort()}` }),
      managementError("registry", /cannot reach registry/),
    );
  });
});
