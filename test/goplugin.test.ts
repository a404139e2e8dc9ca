/**
 * Wire compatibility with HashiCorp go-plugin, both ways, with real Go
 * binaries built from go-plugin's own example sources (examples/grpc and
 * examples/bidirectional) by the Go toolchain on the machine.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  GoPluginClient,
  PluginClient,
  PluginError,
  subprocess,
  type PluginExit,
} from "../src/index.js";
import { SumResponseSchema } from "../examples/goplugin/gen/proto/counter_pb.js";
import { AddHelper, Counter, KV, handshake } from "../examples/goplugin/shared.js";
import { kvGoClient, track } from "./goplugin-helpers.js";
import { goBinaries, removeGoBinaries, runGoHost } from "./go-build.js";
import { MemoryLogger, decode, encode, tempDir, waitFor } from "./helpers.js";
import { DEFAULT_FRAME_TIMEOUT_MS } from "../src/transport/framed/frames.js";

const GO_PLUGIN = "github.com/hashicorp/go-plugin/examples";
const OURS = "github.com/connect-plugin/connect-plugin/go/cmd";
let bin: Record<
  | "kvHost"
  | "kvHostMtls"
  | "kvGoPlugin"
  | "kvNetRpcPlugin"
  | "kvNoisyPlugin"
  | "counterHost"
  | "counterHostMtls"
  | "counterGoPlugin",
  string
>;

before(
  async () => {
    bin = await goBinaries({
      kvHost: `${GO_PLUGIN}/grpc`,
      kvGoPlugin: `${GO_PLUGIN}/grpc/plugin-go-grpc`,
      kvNetRpcPlugin: `${GO_PLUGIN}/grpc/plugin-go-netrpc`,
      counterHost: `${GO_PLUGIN}/bidirectional`,
      counterGoPlugin: `${GO_PLUGIN}/bidirectional/plugin-go-grpc`,
      kvHostMtls: `${OURS}/kv-host-mtls`,
      counterHostMtls: `${OURS}/counter-host-mtls`,
      kvNoisyPlugin: `${OURS}/kv-plugin-noisy`,
    });
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

const js = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const tsKvPlugin = js("../examples/goplugin/kv-plugin.js");
const tsCounterPlugin = js("../examples/goplugin/counter-plugin.js");
const tsFixture = js("./fixtures/goplugin-fixture.js");
/** A shell command line, as go-plugin's example hosts take it (`sh -c "$KV_PLUGIN"`). */
const nodeCommand = (main: string): string => `"${process.execPath}" "${main}"`;

const mtlsModes = [false, true] as const;
const mode = (on: boolean): string => (on ? "AutoMTLS on" : "AutoMTLS off");

describe("a TypeScript host drives go-plugin's own Go plugins", () => {
  for (const autoMTLS of mtlsModes) {
    test(`examples/grpc KV plugin (${mode(autoMTLS)})`, async () => {
      const cwd = tempDir("cp-gp-kv-");
      const logger = new MemoryLogger();
      const client = kvGoClient({ command: bin.kvGoPlugin, cwd, autoMTLS, logger });
      await client.start();
      assert.equal(client.version, 1);
      const kv = client.dispense("kv");
      await kv.put({ key: "hello", value: encode("world") });
      const res = await kv.get({ key: "hello" });
      assert.equal(decode(res.value), "world\n\nWritten from plugin-go-grpc");
      assert.equal(readFileSync(`${cwd}/kv_hello`, "utf8"), "world\n\nWritten from plugin-go-grpc");
      await client.ping();
      // The Go plugin's own hclog line says whether it set up AutoMTLS.
      const configured = logger.records.some(
        (r) => r.message === "configuring server automatic mTLS" && r.level === "debug",
      );
      assert.equal(configured, autoMTLS);
      await client.close();
      assert.equal(client.exit?.expected, true);
      assert.equal(client.exit?.code, 0, "the plugin exits by itself after Shutdown");
    });

    test(`examples/bidirectional Counter plugin calls back into the host through the broker (${mode(autoMTLS)})`, async () => {
      const cwd = tempDir("cp-gp-counter-");
      const client = track(
        new GoPluginClient({
          handshake,
          plugins: { counter: Counter },
          command: bin.counterGoPlugin,
          cwd,
          autoMTLS,
          logger: new MemoryLogger(),
        }),
      );
      await client.start();
      const counter = client.dispense("counter");
      const sums: Array<[bigint, bigint]> = [];
      for (const n of [3n, 4n]) {
        const id = client.broker.nextId();
        const helper = await client.broker.acceptAndServe(id, (router) =>
          router.service(AddHelper, {
            sum: (req) => {
              sums.push([req.a, req.b]);
              return create(SumResponseSchema, { r: req.a + req.b });
            },
          }),
        );
        await counter.put({ addServer: id, key: "c", value: n });
        await helper.close();
      }
      assert.deepEqual(sums, [
        [0n, 3n],
        [3n, 4n],
      ]);
      assert.equal((await counter.get({ key: "c" })).value, 7n);
      await client.close();
    });
  }
});

test("the example TypeScript hosts (examples/goplugin) drive the Go example plugins", async () => {
  const cwd = tempDir("cp-gp-examples-");
  const node = (main: string, args: string[]) =>
    runGoHost(process.execPath, [js(main), ...args], {}, cwd);
  const kvHost = "../examples/goplugin/kv-host.js";
  const counterHost = "../examples/goplugin/counter-host.js";
  assert.equal((await node(kvHost, [bin.kvGoPlugin, "--", "put", "x", "1"])).code, 0);
  const get = await node(kvHost, ["--auto-mtls", bin.kvGoPlugin, "--", "get", "x"]);
  assert.equal(get.stdout, "1\n\nWritten from plugin-go-grpc\n", get.stderr);
  for (const n of ["5", "6"]) {
    const put = await node(counterHost, ["--auto-mtls", bin.counterGoPlugin, "--", "put", "c", n]);
    assert.equal(put.code, 0, put.stderr);
  }
  assert.equal((await node(counterHost, [bin.counterGoPlugin, "--", "get", "c"])).stdout, "11\n");
});

describe("go-plugin's own Go hosts drive TypeScript plugins", () => {
  for (const autoMTLS of mtlsModes) {
    test(`examples/grpc host with the TypeScript KV plugin (${mode(autoMTLS)})`, async () => {
      const cwd = tempDir("cp-gp-gohost-");
      const host = autoMTLS ? bin.kvHostMtls : bin.kvHost;
      const env = { KV_PLUGIN: nodeCommand(tsKvPlugin), KV_PROTO: "grpc" };
      const put = await runGoHost(host, ["put", "hello", "world"], env, cwd);
      assert.equal(put.code, 0, put.stdout + put.stderr);
      const get = await runGoHost(host, ["get", "hello"], env, cwd);
      assert.equal(get.code, 0, get.stdout + get.stderr);
      assert.equal(get.stdout, "world\n\nWritten from plugin-ts\n");
      // The host forwards our plugin's hclog JSON lines as structured logs.
      assert.equal(
        get.stderr.includes("[DEBUG] plugin.sh: configuring server automatic mTLS"),
        autoMTLS,
        get.stderr,
      );
      assert.equal(get.stderr.includes("configuring client automatic mTLS"), autoMTLS);
      assert.match(get.stderr, /\[INFO\] +plugin\.sh: plugin stopped: .*GRPCController\.Shutdown/);
    });

    test(`examples/bidirectional host with the TypeScript Counter plugin, broker callbacks (${mode(autoMTLS)})`, async () => {
      const cwd = tempDir("cp-gp-gocounter-");
      const host = autoMTLS ? bin.counterHostMtls : bin.counterHost;
      const env = { COUNTER_PLUGIN: nodeCommand(tsCounterPlugin) };
      for (const n of ["3", "4"]) {
        const put = await runGoHost(host, ["put", "c", n], env, cwd);
        assert.equal(put.code, 0, put.stdout + put.stderr);
      }
      const get = await runGoHost(host, ["get", "c"], env, cwd);
      assert.equal(get.code, 0, get.stdout + get.stderr);
      assert.equal(get.stdout, "7\n");
    });
  }
});

test("a go-plugin host idle between calls for longer than the frame timeout keeps its connection", async () => {
  // The plugin exits when its host's connection closes (goplugin-serve.ts), so
  // the get after the idle time succeeds only on the connection kept.
  const seconds = DEFAULT_FRAME_TIMEOUT_MS / 1_000 + 5;
  await Promise.all(
    mtlsModes.map(async (autoMTLS) => {
      const env = {
        KV_PLUGIN: nodeCommand(tsKvPlugin),
        KV_PROTO: "grpc",
        ...(!autoMTLS && { KV_HOST_MTLS: "off" }),
      };
      const args = ["idle", "hello", "world", String(seconds)];
      const run = await runGoHost(bin.kvHostMtls, args, env, tempDir("cp-gp-idle-"));
      assert.equal(run.code, 0, `${mode(autoMTLS)}: ${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /^world\n/, mode(autoMTLS));
      assert.doesNotMatch(run.stderr, /cut off|went away/, mode(autoMTLS));
    }),
  );
});

test("the guide's exact KV_PLUGIN command lines work from the repository root", async () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const guide = readFileSync(`${root}/docs/go-plugin.md`, "utf8");
  const lines = [...guide.matchAll(/^KV_PLUGIN="([^"]+)" KV_PROTO=grpc \.\/kv (.+)$/gm)];
  assert.deepEqual(
    lines.map((m) => m[2]),
    ["put hello world", "get hello"],
  );
  const stored = `${root}/kv_hello`;
  assert.equal(existsSync(stored), false, `${stored} exists already; remove it`);
  try {
    const outputs: string[] = [];
    for (const [, plugin = "", args = ""] of lines) {
      const run = await runGoHost(
        bin.kvHost,
        args.split(" "),
        { KV_PLUGIN: plugin, KV_PROTO: "grpc" },
        root,
      );
      assert.equal(run.code, 0, run.stdout + run.stderr);
      outputs.push(run.stdout);
    }
    assert.deepEqual(outputs, ["", "world\n\nWritten from plugin-ts\n"]);
  } finally {
    rmSync(stored, { force: true });
  }
});

describe("one TypeScript plugin binary speaks both protocols", () => {
  test("a connect-plugin host and a go-plugin host both use the same plugin", async () => {
    const connectHost = track(
      new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: subprocess(process.execPath, [tsFixture]),
        logger: new MemoryLogger(),
      }),
    );
    await connectHost.start();
    await connectHost.dispense("kv").put({ key: "a", value: encode("via connect") });
    assert.equal(decode((await connectHost.dispense("kv").get({ key: "a" })).value), "via connect");
    await connectHost.close();

    const goHost = kvGoClient({ command: process.execPath, args: [tsFixture] });
    await goHost.start();
    await goHost.dispense("kv").put({ key: "a", value: encode("via grpc") });
    assert.equal(decode((await goHost.dispense("kv").get({ key: "a" })).value), "via grpc");
    await goHost.close();
    assert.equal(goHost.exit?.code, 0);
  });

  for (const autoMTLS of mtlsModes) {
    test(`stdio goes over plugin.GRPCStdio, logs stay structured (${mode(autoMTLS)})`, async () => {
      const logger = new MemoryLogger();
      const client = kvGoClient({ command: process.execPath, args: [tsFixture], autoMTLS, logger });
      await client.start();
      await client.dispense("kv").put({ key: "stdio", value: encode("") });
      await waitFor("forwarded stdio", () =>
        logger.records.some((r) => r.message === "fixture says hello on stderr"),
      );
      const out = logger.records.find((r) => r.message === "fixture says hello on stdout");
      const err = logger.records.find((r) => r.message === "fixture says hello on stderr");
      assert.deepEqual([out?.source, out?.fields], ["stdout", { stdio: true }]);
      assert.deepEqual([err?.source, err?.fields], ["stderr", { stdio: true }]);
      await client.close();
      // The plugin's own log lines stayed on the real stderr, as hclog JSON.
      const stopped = logger.records.find((r) => r.message === "plugin stopped");
      assert.equal(stopped?.source, "stderr");
      assert.equal(stopped?.level, "info");
      assert.equal(stopped?.fields.reason, "go-plugin host called GRPCController.Shutdown");
    });

    test(`the host dials a service the plugin starts through the broker (${mode(autoMTLS)})`, async () => {
      const client = kvGoClient({ command: process.execPath, args: [tsFixture], autoMTLS });
      await client.start();
      const kv = client.dispense("kv");
      await kv.put({ key: "broker", value: encode("") });
      const id = Number(decode((await kv.get({ key: "broker" })).value));
      assert.ok(id > 0);
      const helper = await client.broker.dial(id);
      const res = await createClient(AddHelper, helper.transport).sum({ a: 2n, b: 3n });
      assert.equal(res.r, 50n, "the plugin's AddHelper multiplies by ten");
      helper.close();
      await assert.rejects(client.broker.dial(id + 100, 200), {
        message: `timeout waiting for connection info (go-plugin broker service ${id + 100})`,
      });
      await client.close();
    });
  }
});

describe("loopback TCP, when the socket directory's path is too long for a unix socket", () => {
  /** A directory whose path leaves no room for a unix socket name (over 103 bytes). */
  const longDir = (): string => {
    const dir = `${tempDir("cp-gp-long-")}/${"d".repeat(90)}`;
    mkdirSync(dir);
    return dir;
  };

  for (const autoMTLS of mtlsModes) {
    test(`a go-plugin host reaches the TypeScript plugin over TCP (${mode(autoMTLS)})`, async () => {
      const host = autoMTLS ? bin.kvHostMtls : bin.kvHost;
      const env = {
        KV_PLUGIN: nodeCommand(tsKvPlugin),
        KV_PROTO: "grpc",
        PLUGIN_UNIX_SOCKET_DIR: longDir(),
      };
      const cwd = tempDir("cp-gp-tcp-");
      const put = await runGoHost(host, ["put", "k", "over tcp"], env, cwd);
      assert.equal(put.code, 0, put.stdout + put.stderr);
      const get = await runGoHost(host, ["get", "k"], env, cwd);
      assert.equal(get.stdout, "over tcp\n\nWritten from plugin-ts\n");
    });

    test(`GoPluginClient reaches a plugin over TCP (${mode(autoMTLS)})`, async () => {
      const client = kvGoClient({
        command: process.execPath,
        args: [tsFixture],
        env: { PLUGIN_UNIX_SOCKET_DIR: longDir() },
        autoMTLS,
      });
      await client.start();
      assert.equal(client.address?.network, "tcp");
      assert.match(client.address?.address ?? "", /^127\.0\.0\.1:\d+$/);
      await client.dispense("kv").put({ key: "t", value: encode("tcp") });
      assert.equal(decode((await client.dispense("kv").get({ key: "t" })).value), "tcp");
      await client.close();
    });
  }
});

describe("a go-plugin plugin's output", () => {
  test("hclog JSON becomes structured records, GRPCStdio output is forwarded, a panic is logged as errors", async () => {
    const logger = new MemoryLogger();
    const client = kvGoClient({ command: bin.kvNoisyPlugin, logger });
    await client.start();
    const exits: PluginExit[] = [];
    client.onExit((exit) => exits.push(exit));
    const kv = client.dispense("kv");
    await kv.put({ key: "stdio", value: encode("xyz") });
    await waitFor("the hclog line", () => logger.records.some((r) => r.message === "put called"));
    const put = logger.records.find((r) => r.message === "put called");
    assert.equal(put?.level, "info");
    assert.equal(put?.source, "stderr");
    assert.equal(put?.fields.key, "stdio");
    assert.equal(put?.fields.bytes, 3);
    // go-plugin's GRPCStdio copies the plugin's stdout and stderr in two
    // goroutines onto one stream: it promises no order between the two, so
    // each line is waited for on its own.
    await waitFor("stderr over GRPCStdio", () =>
      logger.records.some((r) => r.message === "hello on stderr" && r.source === "stderr"),
    );
    await waitFor("stdout over GRPCStdio", () =>
      logger.records.some((r) => r.message === "hello on stdout" && r.source === "stdout"),
    );

    await assert.rejects(kv.put({ key: "panic", value: encode("") }), (e) => {
      assert.equal(ConnectError.from(e).code, Code.Unavailable);
      return true;
    });
    await waitFor("the crash", () => exits.length > 0);
    assert.equal(exits[0]?.expected, false);
    assert.equal(exits[0]?.code, 2, "a Go panic exits with code 2");
    assert.ok(
      logger.records.some(
        (r) =>
          r.source === "host" &&
          r.level === "error" &&
          r.message === "plugin exited with code 2 unexpectedly",
      ),
    );
    const panic = logger.records.find((r) => r.message.startsWith("panic: boom"));
    assert.equal(panic?.level, "error");
    assert.equal(panic?.message, "panic: boom: the plugin crashed on purpose");
    const after = logger.records.slice(logger.records.indexOf(panic));
    assert.ok(
      after.some((r) => r.message.startsWith("goroutine ") && r.level === "error"),
      "the stack trace after the panic is logged as errors too",
    );
    await client.close();
  });
});

describe("go-plugin errors", () => {
  test("a net/rpc plugin gets a clear unsupported-protocol error", async () => {
    const client = kvGoClient({ command: bin.kvNetRpcPlugin });
    await assert.rejects(client.start(), (e: unknown) => {
      assert.ok(e instanceof PluginError);
      assert.equal(e.kind, "unsupported-protocol");
      assert.equal(
        e.message,
        `plugin "${bin.kvNetRpcPlugin}" speaks go-plugin's "netrpc" protocol, which connect-plugin ` +
          `does not support: serve it with GRPCServer: plugin.DefaultGRPCServer to speak "grpc"`,
      );
      return true;
    });
    // The plugin was not left running.
    assert.equal(client.exit?.signal, "SIGKILL");
  });

  test("a mismatched cookie gets the core's cookie-mismatch error", async () => {
    const client = kvGoClient({
      handshake: { ...handshake, magicCookieValue: "not-hello" },
      command: bin.kvGoPlugin,
    });
    await assert.rejects(client.start(), (e: unknown) => {
      assert.ok(e instanceof PluginError);
      assert.equal(e.kind, "cookie-mismatch");
      assert.ok(
        e.message.startsWith(
          `plugin "${bin.kvGoPlugin}" refused to start: it is not a plugin for this host, or its ` +
            `magic cookie BASIC_PLUGIN does not match (it exited with code 1).\n` +
            `--- plugin stderr (last lines) ---\nThis binary is a plugin.`,
        ),
        e.message,
      );
      return true;
    });
  });

  test("a mismatched version gets the core's version-mismatch error", async () => {
    const client = kvGoClient({
      handshake: { ...handshake, protocolVersion: 2 },
      command: bin.kvGoPlugin,
    });
    await assert.rejects(client.start(), {
      name: "PluginError",
      kind: "version-mismatch",
      message: `protocol version mismatch with plugin "${bin.kvGoPlugin}": the plugin speaks [1], this host speaks [2]`,
    });
  });

  test("close() kills a plugin that has not exited within the grace period after Shutdown", async () => {
    const logger = new MemoryLogger();
    const client = kvGoClient({
      command: process.execPath,
      args: [tsFixture],
      gracePeriodMs: 500,
      logger,
    });
    await client.start();
    const stuck = client.dispense("kv").put({ key: "slow", value: encode("") });
    // Once the call has reached the plugin (it says so over GRPCStdio), the
    // plugin drains it for its own 10 s grace period; the host waits 500 ms.
    // (Had the call not arrived, the plugin would exit by itself, with code 0.)
    await waitFor("the slow call to reach the plugin", () =>
      logger.messages().includes("fixture: slow call arrived"),
    );
    await client.close();
    assert.equal(client.exit?.signal, "SIGKILL");
    assert.equal(client.exit?.expected, true);
    await assert.rejects(stuck, (e) => {
      assert.equal(ConnectError.from(e).code, Code.Unavailable);
      return true;
    });
  });

  test("a go-plugin plugin given to PluginClient is pointed to GoPluginClient", async () => {
    const client = track(
      new PluginClient({
        handshake,
        plugins: { kv: KV },
        source: subprocess(bin.kvGoPlugin, []),
        logger: new MemoryLogger(),
      }),
    );
    await assert.rejects(client.start(), {
      kind: "not-a-plugin-server",
      message:
        `"${bin.kvGoPlugin}" does not speak the connect-plugin protocol ` +
        `(connectplugin.v1.PluginController/Handshake: unknown service connectplugin.v1.PluginController); ` +
        `a go-plugin plugin is used with GoPluginClient (docs/go-plugin.md)`,
    });
  });

  test("dispensing before start, or an unknown name, says why", async () => {
    const client = kvGoClient({ command: bin.kvGoPlugin });
    assert.throws(() => client.dispense("kv"), {
      message: `plugin "${bin.kvGoPlugin}" is not started; await client.start() first`,
    });
    await client.start();
    assert.throws(() => client.dispense("nope" as "kv"), {
      kind: "unknown-plugin",
      message: `this host has no plugin named "nope" at protocol version 1 (it knows: "kv")`,
    });
    await client.close();
    assert.throws(() => client.dispense("kv"), {
      message: `plugin "${bin.kvGoPlugin}" is closed`,
    });
  });
});
