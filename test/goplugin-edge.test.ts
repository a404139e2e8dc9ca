/**
 * go-plugin interop at the edges: close() during start, environment that a
 * plugin-hosting plugin must not pass on, VersionedPlugins negotiation both
 * ways (compared with a real Go plugin built with go-plugin), the GRPCBroker
 * under concurrent dials and close, and the handshake fields a Go plugin
 * may print. Real Go binaries and real Node processes throughout.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { GoPluginClient, PluginClient, PluginError, subprocess } from "../src/index.js";
import { generateAutoMtlsCertificate } from "../src/security/auto-mtls.js";
import { GrpcBroker } from "../src/transport/goplugin-broker.js";
import { AddHelper, KV, handshake } from "../examples/goplugin/shared.js";
import { kvGoClient, track } from "./goplugin-helpers.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { MemoryLogger, decode, encode, tempDir, waitFor } from "./helpers.js";

const GO_PLUGIN = "github.com/hashicorp/go-plugin/examples";
const OURS = "github.com/connect-plugin/connect-plugin/go/cmd";
let bin: Record<"kvGoPlugin" | "kvVersioned" | "kvHostMtls", string>;

before(
  async () => {
    bin = await goBinaries({
      kvGoPlugin: `${GO_PLUGIN}/grpc/plugin-go-grpc`,
      kvVersioned: `${OURS}/kv-plugin-versioned`,
      kvHostMtls: `${OURS}/kv-host-mtls`,
    });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

/** go-plugin's examples/grpc Go plugin appends this to every value it returns. */
const GO_SIGNED = (value: string): string => `${value}\n\nWritten from plugin-go-grpc`;

const js = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const tsFixture = js("./fixtures/goplugin-fixture.js");
const blackhole = js("./fixtures/goplugin-blackhole.js");
const bridge = js("./fixtures/goplugin-bridge.js");
const tsVersioned = js("./fixtures/goplugin-versioned.js");

/** Runs `fn` with `name` set in this process's environment, then restores it. */
async function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  process.env[name] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

describe("GoPluginClient start and close", () => {
  test("close() during start() does not wait for a plugin that never answers its health check", async () => {
    const logger = new MemoryLogger();
    const client = kvGoClient({ command: process.execPath, args: [blackhole], logger });
    const started = client.start();
    started.catch(() => {});
    // The health check is under way once the plugin has a connection.
    await waitFor("the health check's connection", () => logger.messages().includes("accepted"));
    const t0 = Date.now();
    await client.close();
    const closeMs = Date.now() - t0;
    await assert.rejects(started, {
      name: "PluginError",
      kind: "not-running",
      message: `plugin ${JSON.stringify(`${process.execPath} ${blackhole}`)} was closed while starting`,
    });
    // Not a speed check: without the fix close() waits out the 60 s start timeout.
    assert.ok(closeMs < 20_000, `close() took ${closeMs} ms`);
    assert.equal(client.exit?.expected, true);
  });
});

describe("environment a plugin-hosting plugin must not pass on", () => {
  test("a TypeScript plugin launched with AutoMTLS hosts a Go plugin with AutoMTLS off (bridge)", async () => {
    const client = track(
      new PluginClient({
        handshake,
        plugins: { kv: KV },
        // PluginClient's AutoMTLS is on for this plugin: it gets PLUGIN_CLIENT_CERT.
        source: subprocess(process.execPath, [bridge], {
          env: { BRIDGE_TARGET: bin.kvGoPlugin, BRIDGE_CWD: tempDir("cp-bridge-") },
        }),
        logger: new MemoryLogger(),
      }),
    );
    await client.start();
    const kv = client.dispense("kv");
    assert.equal(decode((await kv.get({ key: "env" })).value), "unset");
    await kv.put({ key: "k", value: encode("through the bridge") });
    assert.equal(decode((await kv.get({ key: "k" })).value), GO_SIGNED("through the bridge"));
    await client.close();
  });

  for (const host of ["GoPluginClient", "PluginClient"] as const) {
    test(`an inherited PLUGIN_CLIENT_CERT does not reach the plugin when AutoMTLS is off (${host})`, async () => {
      const stray = generateAutoMtlsCertificate().certPem;
      await withEnv("PLUGIN_CLIENT_CERT", stray, async () => {
        const client =
          host === "GoPluginClient"
            ? kvGoClient({ command: bin.kvGoPlugin, cwd: tempDir("cp-kv-") })
            : track(
                new PluginClient({
                  handshake,
                  plugins: { kv: KV },
                  source: subprocess(process.execPath, [tsFixture], { autoMTLS: false }),
                  logger: new MemoryLogger(),
                }),
              );
        await client.start();
        await client.dispense("kv").put({ key: "a", value: encode("plaintext") });
        assert.equal(
          decode((await client.dispense("kv").get({ key: "a" })).value),
          host === "GoPluginClient" ? GO_SIGNED("plaintext") : "plaintext",
        );
        await client.close();
      });
    });
  }

  test("a plugin that serves TLS although AutoMTLS is off gets a clear error", async () => {
    const client = kvGoClient({
      command: bin.kvGoPlugin,
      env: { PLUGIN_CLIENT_CERT: generateAutoMtlsCertificate().certPem },
      cwd: tempDir("cp-kv-"),
    });
    await assert.rejects(client.start(), {
      kind: "malformed-handshake",
      message:
        `plugin ${JSON.stringify(bin.kvGoPlugin)} serves TLS (its handshake line carries a ` +
        `certificate) but AutoMTLS is off; turn on autoMTLS, or find what sets ` +
        `PLUGIN_CLIENT_CERT for it`,
    });
  });

  test("an invalid PLUGIN_CLIENT_CERT makes a TypeScript plugin exit with go-plugin's message", async () => {
    const { code, stdout, stderr } = await runUntilLine(process.execPath, [tsFixture], {
      PLUGIN_CLIENT_CERT: "garbage",
    });
    assert.equal(code, 1);
    assert.equal(stdout, "", "no handshake line");
    const record = JSON.parse(stderr.trim().split("\n").at(-1) ?? "{}") as Record<string, unknown>;
    assert.equal(record["@level"], "error");
    assert.equal(record["@message"], "client cert provided but failed to parse");
    assert.equal(record.env, "PLUGIN_CLIENT_CERT");
  });

  test("PLUGIN_MULTIPLEX_GRPC=false: the Go plugin's seventh field (supported, not on) is accepted", async () => {
    const client = kvGoClient({
      command: bin.kvGoPlugin,
      env: { PLUGIN_MULTIPLEX_GRPC: "false" },
      cwd: tempDir("cp-kv-"),
    });
    await client.start();
    await client.dispense("kv").put({ key: "a", value: encode("not multiplexed") });
    assert.equal(
      decode((await client.dispense("kv").get({ key: "a" })).value),
      GO_SIGNED("not multiplexed"),
    );
    await client.close();
  });

  test("a TypeScript plugin told to announce 'framed' is refused by GoPluginClient with a clear error", async () => {
    const client = kvGoClient({
      command: process.execPath,
      args: [tsFixture],
      env: { CONNECT_PLUGIN_TRANSPORTS: "framed" },
    });
    await assert.rejects(client.start(), {
      kind: "unsupported-protocol",
      message:
        `plugin ${JSON.stringify(`${process.execPath} ${tsFixture}`)} announced the protocol ` +
        `"framed", but a go-plugin host speaks only "grpc"; a connect-plugin plugin speaks ` +
        `"grpc" unless CONNECT_PLUGIN_TRANSPORTS is set (use PluginClient for its other transports)`,
    });
  });
});

test("a Go host that asks for broker multiplexing is told the TypeScript plugin does not support it", async () => {
  const tsKvPlugin = js("../examples/goplugin/kv-plugin.js");
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(
      bin.kvHostMtls,
      ["get", "x"],
      {
        // exec: the plugin replaces the shell, so go-plugin's kill reaches it.
        env: {
          ...process.env,
          KV_HOST_MUX: "1",
          KV_PLUGIN: `exec "${process.execPath}" "${tsKvPlugin}"`,
        },
        cwd: tempDir("cp-mux-"),
        timeout: 60_000,
      },
      (error, out) => resolve({ code: error === null ? 0 : (error.code as number), stdout: out }),
    );
  });
  assert.equal(code, 1);
  // go-plugin's ErrGRPCBrokerMuxNotSupported, without "update ... and recompile",
  // which it prints when the plugin says nothing.
  assert.equal(
    stdout,
    "error: client requested gRPC broker multiplexing but plugin does not support the feature\n",
  );
});

describe("VersionedPlugins, against a Go plugin built with go-plugin's VersionedPlugins", () => {
  test("the host offers every version and dispenses the set of the one the plugin picks", async () => {
    const client = track(
      new GoPluginClient({
        handshake,
        versionedPlugins: { 1: { kv: KV }, 2: { kv: KV } },
        command: bin.kvVersioned,
        logger: new MemoryLogger(),
      }),
    );
    await client.start();
    assert.equal(client.version, 2, "the Go plugin picked the highest version both list");
    const kv = client.dispenseAt(2, "kv");
    await kv.put({ key: "a", value: encode("x") });
    assert.equal(decode((await kv.get({ key: "a" })).value), "v2:x");
    assert.throws(() => client.dispenseAt(1, "kv"), {
      kind: "unknown-plugin",
      message: `cannot dispense "kv" at protocol version 1: plugin ${JSON.stringify(bin.kvVersioned)} agreed on version 2`,
    });
    await client.close();
  });

  test("a host that knows only version 1 gets version 1", async () => {
    const client = track(
      new GoPluginClient({
        handshake,
        versionedPlugins: { 1: { kv: KV } },
        command: bin.kvVersioned,
        logger: new MemoryLogger(),
      }),
    );
    await client.start();
    assert.equal(client.version, 1);
    await client.dispense("kv").put({ key: "a", value: encode("x") });
    assert.equal(decode((await client.dispense("kv").get({ key: "a" })).value), "v1:x");
    await client.close();
  });

  test("no common version: the core's version-mismatch error", async () => {
    const client = track(
      new GoPluginClient({
        handshake,
        versionedPlugins: { 3: { kv: KV }, 4: { kv: KV } },
        command: bin.kvVersioned,
        logger: new MemoryLogger(),
      }),
    );
    await assert.rejects(client.start(), (error: unknown) => {
      assert.ok(error instanceof PluginError);
      assert.equal(error.kind, "version-mismatch");
      assert.equal(
        error.message,
        `protocol version mismatch with plugin ${JSON.stringify(bin.kvVersioned)}: the plugin ` +
          `speaks [1], this host speaks [3, 4]`,
      );
      return true;
    });
  });

  // What each plugin prints, launched by hand with only the cookie (and a
  // PLUGIN_PROTOCOL_VERSIONS as given): the TypeScript plugin must choose as
  // go-plugin's protocolVersion() does.
  for (const [versions, expected] of [
    [undefined, 1],
    ["3", 1],
    ["1,2", 2],
    ["2abc", 1],
  ] as const) {
    test(`PLUGIN_PROTOCOL_VERSIONS=${versions ?? "(unset)"}: the TypeScript plugin announces what the Go plugin announces (${expected})`, async () => {
      const env: Record<string, string> =
        versions === undefined ? {} : { PLUGIN_PROTOCOL_VERSIONS: versions };
      const go = await runUntilLine(bin.kvVersioned, [], env);
      const ts = await runUntilLine(process.execPath, [tsVersioned], env);
      const fields = (line: string): string[] => {
        const f = line.trim().split("|");
        return [f[0] ?? "", f[1] ?? "", f[4] ?? ""];
      };
      assert.deepEqual(fields(go.stdout), ["1", String(expected), "grpc"], go.stderr);
      assert.deepEqual(fields(ts.stdout), fields(go.stdout), ts.stderr);
    });
  }
});

describe("a go-plugin plugin's output", () => {
  test("plain stderr lines get go-plugin's levels: prefix, else debug; error from a plain panic on", async () => {
    const logger = new MemoryLogger();
    const client = kvGoClient({
      command: process.execPath,
      args: [tsFixture],
      env: { FIXTURE_STDERR_LINES: "1" },
      logger,
    });
    await client.start();
    const level = (message: string): string | undefined =>
      logger.records.find((r) => r.source === "stderr" && r.message === message)?.level;
    await waitFor("the last line", () => level("json after the panic") !== undefined);
    assert.deepEqual(
      [
        "[WARN] a warning",
        "a plain line",
        "[ERROR] an error",
        "json without fields",
        "panic: only a message",
        "a plain line before the panic",
        "panic: boom",
        "goroutine 1 [running]:",
        "[INFO] prefixed after the panic",
        "json after the panic",
      ].map((m) => [m, level(m)]),
      [
        ["[WARN] a warning", "warn"],
        ["a plain line", "debug"],
        ["[ERROR] an error", "error"],
        ["json without fields", "info"],
        ["panic: only a message", "info"],
        ["a plain line before the panic", "debug"],
        ["panic: boom", "error"],
        ["goroutine 1 [running]:", "error"],
        ["[INFO] prefixed after the panic", "info"],
        ["json after the panic", "info"],
      ],
    );
    await client.close();
  });

  test("a last stdout line without a newline is logged when the plugin stops", async () => {
    const logger = new MemoryLogger();
    const client = kvGoClient({ command: process.execPath, args: [tsFixture], logger });
    await client.start();
    await client.dispense("kv").put({ key: "partial", value: encode("") });
    await client.close();
    await waitFor("the partial line", () =>
      logger.records.some(
        (r) => r.source === "stdout" && r.message === "a last line without a newline",
      ),
    );
  });
});

test("what a plugin writes just before process.exit() reaches the host; its crash closes the broker", async () => {
  const logger = new MemoryLogger();
  const client = kvGoClient({ command: process.execPath, args: [tsFixture], logger });
  await client.start();
  const pending = client.broker.dial(50, 60_000);
  await assert.rejects(client.dispense("kv").put({ key: "exit", value: encode("") }));
  await waitFor("the exit", () => client.exit !== undefined);
  assert.equal(client.exit?.code, 3);
  // The crash closes the host's broker: its dials fail now, not in a minute.
  await assert.rejects(pending, {
    message: "the go-plugin broker closed while dialing service 50; it was never announced",
  });
  await waitFor("the last words", () => logger.messages().includes("last words before exit"));
  await client.close();
});

describe("GRPCBroker", () => {
  function brokerClient(): GoPluginClient<{ kv: typeof KV }> {
    return kvGoClient({ command: process.execPath, args: [tsFixture] });
  }

  /** Asks the fixture to start its AddHelper through the broker; returns its id. */
  async function announce(client: GoPluginClient<{ kv: typeof KV }>): Promise<number> {
    const kv = client.dispense("kv");
    await kv.put({ key: "broker", value: encode("") });
    return Number(decode((await kv.get({ key: "broker" })).value));
  }

  test("concurrent dials of one id all get the service, and a timed-out dial does not cancel the others", async () => {
    const client = brokerClient();
    await client.start();
    // The fixture's broker hands out ids from 1.
    const early = client.broker.dial(1, 50);
    const first = client.broker.dial(1, 30_000);
    const second = client.broker.dial(1, 30_000);
    await assert.rejects(early, {
      message: "timeout waiting for connection info (go-plugin broker service 1)",
    });
    assert.equal(await announce(client), 1);
    for (const transport of await Promise.all([first, second])) {
      const res = await createClient(AddHelper, transport.transport).sum({ a: 1n, b: 2n });
      assert.equal(res.r, 30n);
      transport.close();
    }
    await client.close();
  });

  test("an announcement nobody dials is dropped after the dial timeout (5 s), as go-plugin does", async () => {
    const client = brokerClient();
    await client.start();
    const id = await announce(client);
    // Claimed right away, it works (the info was kept)...
    const kept = await client.broker.dial(id, 1_000);
    kept.close();
    const again = await announce(client);
    await new Promise((r) => setTimeout(r, 5_500));
    // ...but not after go-plugin's 5 s.
    await assert.rejects(client.broker.dial(again, 200), {
      message: `timeout waiting for connection info (go-plugin broker service ${again})`,
    });
    await client.close();
  });

  test("close() rejects pending dials at once with a clear error", async () => {
    const client = brokerClient();
    await client.start();
    const pending = client.broker.dial(99, 60_000);
    const t0 = Date.now();
    await client.close();
    await assert.rejects(pending, {
      message: "the go-plugin broker closed while dialing service 99; it was never announced",
    });
    assert.ok(Date.now() - t0 < 30_000, "rejected by close(), not by the dial timeout");
  });

  test("a service started while the broker closes is shut down, its socket removed", async () => {
    const dir = tempDir("cp-broker-");
    const broker = new GrpcBroker({ socketDir: dir });
    const serving = broker.acceptAndServe(1, (router) =>
      router.service(AddHelper, { sum: () => ({ r: 0n }) }),
    );
    await broker.close();
    await assert.rejects(serving, { message: "the go-plugin broker is closed" });
    assert.deepEqual(readdirSync(dir), [], "no socket left behind");
  });
});

/**
 * Starts a plugin by hand with only the cookie and `env` (no host
 * variables), and returns its first stdout line; kills it then.
 */
function runUntilLine(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("PLUGIN_") && !k.startsWith("CONNECT_PLUGIN_")) {
      clean[k] = v;
    }
  }
  const child = spawn(command, args, {
    env: {
      ...clean,
      [handshake.magicCookieKey]: handshake.magicCookieValue,
      PLUGIN_UNIX_SOCKET_DIR: tempDir("cp-line-"),
      ...env,
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes("\n")) child.kill("SIGKILL");
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: stdout.split("\n")[0] ?? "", stderr });
    });
  });
}
