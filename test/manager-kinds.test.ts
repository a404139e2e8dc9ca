/**
 * One manager for every kind of plugin, declared by signed manifests: a
 * go-plugin program (go-plugin's own examples/grpc KV plugin, built from the
 * module proxy), a remote endpoint and a cluster; and the manifest errors a
 * bad declaration gets.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KV as GoKV, handshake as goHandshake } from "../examples/goplugin/shared.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { remote } from "../src/host/sources.js";
import { hostPlatform } from "../src/manifest/platform.js";
import { validateManifest } from "../src/manifest/manifest.js";
import { PluginManager, type ManagedEvent } from "../src/manager/manager.js";
import { collectStatus } from "../src/status/snapshot.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { decode, encode, isAlive, startNetworkPlugin, tempDir, waitFor } from "./helpers.js";
import { keysOnDisk, signAndInstall } from "./oci-helpers.js";
import { startLedger, stopAll, type LedgerInstance } from "./cluster-helpers.js";

let bin: { kv: string };
before(
  async () => {
    bin = await goBinaries({ kv: "github.com/hashicorp/go-plugin/examples/grpc/plugin-go-grpc" });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);
const ledgers: LedgerInstance[] = [];
after(() => stopAll(ledgers));

const base = {
  schemaVersion: 1,
  version: "1.0.0",
  description: "d",
  license: "Apache-2.0",
  protocolVersions: [1],
  hostVersions: ">=0.0.0",
} as const;

/** Writes a plugin directory with `manifest`, signs it with the CLI and installs it; returns the plugins dir. */
async function installManifest(
  manifest: Record<string, unknown>,
  keys: ReturnType<typeof keysOnDisk>,
  files: Record<string, string> = {},
): Promise<string> {
  const dir = join(tempDir("cp-kind-"), String(manifest.name));
  mkdirSync(dir, { recursive: true });
  for (const [name, from] of Object.entries(files)) copyFileSync(from, join(dir, name));
  writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest, null, 2));
  return signAndInstall(dir, keys);
}

test("bad declarations of a kind get a message naming the field and the kind", () => {
  const bad = (m: Record<string, unknown>): string => {
    try {
      validateManifest({ ...base, name: "x", plugins: [{ name: "kv", service: "a.B" }], ...m });
    } catch (e) {
      return (e as Error).message;
    }
    return "accepted";
  };
  assert.equal(
    bad({ kind: "remote" }),
    'invalid manifest: endpoint: is required for kind "remote"',
  );
  assert.equal(
    bad({
      kind: "remote",
      endpoint: { url: "http://127.0.0.1:1" },
      entrypoints: { "linux/amd64": { file: "x" } },
      files: { x: `sha256:${"0".repeat(64)}` },
    }),
    "invalid manifest: entrypoints: a remote plugin runs elsewhere, so the host launches nothing " +
      'and ships no files (kind "remote"); files: a remote plugin runs elsewhere, so the host ' +
      'launches nothing and ships no files (kind "remote")',
  );
  assert.equal(
    bad({
      goPlugin: { magicCookieKey: "K", magicCookieValue: "v" },
      entrypoints: { "linux/amd64": { file: "x" } },
      files: { x: `sha256:${"0".repeat(64)}` },
    }),
    'invalid manifest: goPlugin: is only for kind "go-plugin", and this plugin is kind "subprocess"',
  );
  assert.equal(
    bad({ kind: "go-plugin", entrypoints: { "linux/amd64": { file: "x" } }, files: {} }),
    'invalid manifest: goPlugin: is required for kind "go-plugin"',
  );
  assert.equal(
    bad({
      kind: "go-plugin",
      goPlugin: { magicCookieKey: "K", magicCookieValue: "v" },
      entrypoints: { "linux/amd64": { file: "x" } },
      files: {},
    }),
    "invalid manifest: files: lists no files; fill it in with 'connect-plugin sign <dir> --key <key> " +
      "--update-files' (or 'connect-plugin init')",
  );

  assert.equal(
    bad({
      kind: "cluster",
      cluster: { discovery: { static: ["http://a:1"], etcd: { hosts: ["h"], prefix: "/p" } } },
    }),
    "invalid manifest: cluster.discovery: give exactly one of static, dnsSrv, kubernetes, etcd",
  );
  assert.equal(
    bad({ kind: "cluster", cluster: { discovery: {} } }),
    "invalid manifest: cluster.discovery: give exactly one of static, dnsSrv, kubernetes, etcd",
  );
  assert.match(
    bad({ kind: "lambda" }),
    /kind: must be one of "subprocess", "go-plugin", "remote", "cluster"; entrypoints: is required; files: is required$/,
  );
  assert.equal(
    bad({ kind: "remote", endpoint: { url: "ftp://x" } }),
    'invalid manifest: endpoint.url: must match pattern "^https?://"',
  );
  // A subprocess plugin still needs its program.
  assert.equal(bad({}), "invalid manifest: entrypoints: is required; files: is required");
});

/** go-plugin's examples/grpc KV plugin, installed from a signed manifest of kind go-plugin. */
async function installGoKV(keys: ReturnType<typeof keysOnDisk>): Promise<string> {
  const digest = `sha256:${createHash("sha256").update(readFileSync(bin.kv)).digest("hex")}`;
  return installManifest(
    {
      ...base,
      name: "gokv",
      kind: "go-plugin",
      goPlugin: {
        magicCookieKey: goHandshake.magicCookieKey,
        magicCookieValue: goHandshake.magicCookieValue,
      },
      entrypoints: { [hostPlatform()]: { file: "kv" } },
      plugins: [{ name: "kv", service: "proto.KV" }],
      files: { kv: digest },
    },
    keys,
    { kv: bin.kv },
  );
}

test("a go-plugin plugin declared by a signed manifest is verified, started, supervised (crash restart), upgraded, probed and shown in status", async () => {
  const keys = keysOnDisk();
  const dir = await installGoKV(keys);
  const events: ManagedEvent[] = [];
  const manager = new PluginManager({
    directories: [dir],
    trustedKeysDir: keys.trustedDir,
    restart: { maxRestarts: 3, windowMs: 60_000, initialBackoffMs: 10 },
    onEvent: (_n, e) => events.push(e),
  });
  try {
    await manager.scan();
    assert.deepEqual(manager.describe("gokv").provides, [{ name: "kv", service: "proto.KV" }]);
    // The manifest's cookie is what the plugin gets; the host's handshake gives the version.
    const handle = manager.open("gokv", {
      handshake: { ...goHandshake, magicCookieValue: "not-used" },
      plugins: { kv: GoKV },
    });
    const kv = handle.dispense("kv");
    await kv.put({ key: "a", value: encode("1") });
    assert.match(decode((await kv.get({ key: "a" })).value), /^1\n\nWritten from plugin-go-grpc/);
    const pid = handle.pid!;
    assert.ok(isAlive(pid));
    const [row] = manager.status();
    assert.deepEqual(
      [row?.location, row?.generation, row?.restarts, row?.state],
      ["subprocess (go-plugin)", 1, 0, "running"],
    );
    const snapshot = await collectStatus(manager);
    assert.equal(snapshot.plugins[0]?.health, "serving");
    assert.match(snapshot.plugins[0]?.where ?? "", new RegExp(`^pid ${pid}: go-plugin `));

    process.kill(pid, "SIGKILL");
    await waitFor(
      "the crashed go-plugin plugin restarted",
      () => handle.restarts === 1 && handle.state === "running",
      10_000,
    );
    assert.match(decode((await kv.get({ key: "a" })).value), /^1\n\nWritten from plugin-go-grpc/);
    assert.notEqual(handle.pid, pid);

    const up = await manager.upgrade("gokv");
    assert.equal(up.upgraded, true);
    assert.equal(handle.generation, 3);
    assert.match(decode((await kv.get({ key: "a" })).value), /^1\n\nWritten from plugin-go-grpc/);

    const probed = await manager.probe("gokv", { handshake: goHandshake, plugins: { kv: GoKV } });
    assert.deepEqual(
      probed.map((p) => p.service),
      ["proto.KV"],
    );
  } finally {
    await manager.close();
  }
  assert.ok(events.some((e) => e.type === "retired"));
});

test("a go-plugin plugin is stopped when idle, and the next call starts it again", async () => {
  const keys = keysOnDisk();
  const dir = await installGoKV(keys);
  const events: string[] = [];
  const manager = new PluginManager({
    directories: [dir],
    trustedKeysDir: keys.trustedDir,
    idleTimeoutMs: 300,
    onEvent: (_n, e) => events.push(e.type),
  });
  try {
    await manager.scan();
    const handle = manager.open("gokv", { handshake: goHandshake, plugins: { kv: GoKV } });
    const kv = handle.dispense("kv");
    await kv.put({ key: "a", value: encode("1") });
    const pid = handle.pid!;
    await waitFor("the idle stop", () => handle.state === "idle", 10_000);
    assert.ok(events.includes("idle-stop"), events.join(", "));
    await waitFor("the idle go-plugin plugin to exit", () => !isAlive(pid), 10_000);
    // go-plugin's example KV keeps its store in files, so the value survives the restart.
    assert.match(decode((await kv.get({ key: "a" })).value), /^1\n\nWritten from plugin-go-grpc/);
    assert.notEqual(handle.pid, pid);
    assert.equal(events.filter((e) => e === "started").length, 2, events.join(", "));
  } finally {
    await manager.close();
  }
});

for (const [what, secret, shown] of [
  ["a password", "http://ada:s3cret@127.0.0.1:1", "http://ada:***@127.0.0.1:1"],
  ["a user name with no password (a token)", "http://T0KEN@127.0.0.1:1", "http://***@127.0.0.1:1"],
]) {
  test(`status() shows ${what} in the URL of a remote or cluster manifest, or of a registered endpoint, as ***`, async () => {
    const keys = keysOnDisk();
    // Nothing listens there: status() says where a plugin is without reaching it.
    const plugins = [{ name: "kv", service: KV.typeName }];
    const dir = await installManifest(
      { ...base, name: "remote-pw", kind: "remote", endpoint: { url: `${secret}/` }, plugins },
      keys,
    );
    const dir2 = await installManifest(
      {
        ...base,
        name: "cluster-pw",
        kind: "cluster",
        cluster: { discovery: { static: [secret] } },
        plugins,
      },
      keys,
    );
    const manager = new PluginManager({
      directories: [dir, dir2],
      trustedKeysDir: keys.trustedDir,
    });
    try {
      await manager.scan();
      manager.registerEndpoint("endpoint-pw", { source: remote(`${secret}/`) });
      for (const name of ["remote-pw", "cluster-pw", "endpoint-pw"]) {
        manager.open(name, { handshake, plugins: { kv: KV } });
      }
      assert.deepEqual(
        manager.status().map((s) => [s.name, s.location]),
        [
          ["remote-pw", `${shown}/`],
          ["cluster-pw", `cluster (static ${JSON.stringify([shown])})`],
          ["endpoint-pw", `${shown}/`],
        ],
      );
    } finally {
      await manager.close();
    }
  });
}

test("a remote endpoint and a cluster declared by signed manifests are opened and called; a manifest edited after signing is refused", async () => {
  const keys = keysOnDisk();
  const service = await startNetworkPlugin("kv");
  const a = await startLedger("kind-a");
  const b = await startLedger("kind-b");
  ledgers.push(a, b);
  const dir = await installManifest(
    {
      ...base,
      name: "remote-kv",
      kind: "remote",
      endpoint: { url: service.url },
      plugins: [{ name: "kv", service: KV.typeName }],
    },
    keys,
  );
  const dir2 = await installManifest(
    {
      ...base,
      name: "cluster-kv",
      kind: "cluster",
      cluster: { discovery: { static: [a.url, b.url] }, balancer: "round-robin" },
      plugins: [{ name: "kv", service: KV.typeName }],
    },
    keys,
  );
  const manager = new PluginManager({ directories: [dir, dir2], trustedKeysDir: keys.trustedDir });
  try {
    await manager.scan();
    const remoteKv = manager.open("remote-kv", { handshake, plugins: { kv: KV } }).dispense("kv");
    await remoteKv.put({ key: "k", value: encode("v") });
    assert.equal(decode((await remoteKv.get({ key: "k" })).value), "v");
    const pooled = manager.open("cluster-kv", { handshake, plugins: { kv: KV } }).dispense("kv");
    for (let i = 0; i < 4; i++) await pooled.put({ key: `w${i}`, value: encode("v") });
    assert.deepEqual([a.writes().length, b.writes().length], [2, 2]);
    const status = manager.status();
    assert.deepEqual(
      status.map((s) => [s.name, s.location]),
      [
        ["remote-kv", service.url],
        ["cluster-kv", `cluster (static ${JSON.stringify([a.url, b.url])})`],
      ],
    );
    const snapshot = await collectStatus(manager);
    const endpoints = snapshot.plugins.find((p) => p.name === "cluster-kv")?.endpoints ?? [];
    assert.deepEqual(
      endpoints.map((e) => [e.admission, e.protocolVersion]),
      [
        ["serving", 1],
        ["serving", 1],
      ],
    );
    await manager.close();

    // Point the signed manifest elsewhere: its signature no longer verifies.
    const file = join(dir, "remote-kv", "plugin.json");
    writeFileSync(file, readFileSync(file, "utf8").replace(service.url, "http://127.0.0.1:1"));
    const again = new PluginManager({ directories: [dir], trustedKeysDir: keys.trustedDir });
    await again.scan();
    await assert.rejects(
      again
        .open("remote-kv", { handshake, plugins: { kv: KV } })
        .dispense("kv")
        .get({ key: "k" }),
      /signature/,
    );
    await again.close();
  } finally {
    await manager.close();
    await service.stop();
  }
});
