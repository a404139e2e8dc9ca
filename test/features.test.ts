/**
 * Features from the README's table that need a test of their own: several
 * named plugins and versions, health Watch, gRPC-web, cancellation reaching
 * the plugin, host interceptors, go-plugin-style parents, and the host's
 * grace period reaching the plugin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import {
  createGrpcTransport,
  createGrpcWebTransport,
  createConnectTransport,
} from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../src/gen/grpc/health/v1/health_pb.js";
import { PluginController } from "../src/gen/connectplugin/v1/controller_pb.js";
import { PluginClient, PluginError, inProcess, serve, silentLogger } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { faultyKvDefinition, multiDefinition } from "./fixtures/faulty-kv.js";
import {
  decode,
  encode,
  expectUnavailable,
  fixture,
  isAlive,
  kvClient,
  startNetworkPlugin,
  timed,
  waitFor,
} from "./helpers.js";

test("several named plugins at several versions: the host gets the highest common one", async () => {
  for (const source of [fixture("multi"), inProcess(multiDefinition())]) {
    const client = new PluginClient({
      handshake,
      versionedPlugins: { 1: { kv: KV }, 2: { kv: KV, cache: KV } },
      source,
      logger: silentLogger,
    });
    await client.start();
    assert.equal(client.protocolVersion, 2);
    assert.deepEqual(
      client.availablePlugins.map((p) => [p.name, p.version, p.service]),
      [
        ["kv", "2.0.0", "example.kv.v1.KV"],
        ["cache", "2.0.0", "example.kv.v1.KV"],
      ],
    );
    await client.dispenseAt(2, "kv").put({ key: "shared", value: encode("one implementation") });
    assert.equal(
      decode((await client.dispenseAt(2, "cache").get({ key: "shared" })).value),
      "one implementation",
    );
    await client.close();

    const old = new PluginClient({
      handshake,
      versionedPlugins: { 1: { kv: KV, cache: KV } },
      source: source.kind === "subprocess" ? fixture("multi") : inProcess(multiDefinition()),
      logger: silentLogger,
    });
    // Version 1 is agreed, but the plugin has no "cache" there: the start fails.
    await assert.rejects(
      old.start(),
      /does not provide "cache" at protocol version 1 \(it provides: "kv"\)/,
    );
    await old.close();
  }
});

test("grpc.health.v1 Watch streams the change to NOT_SERVING when a plugin shuts down", async () => {
  const plugin = await startNetworkPlugin("kv", { FIXTURE_GRACE_MS: "300" });
  const health = createClient(Health, createGrpcTransport({ baseUrl: plugin.url }));
  const seen: Status[] = [];
  const watching = timed(
    (async () => {
      for await (const res of health.watch({ service: "plugin" })) {
        seen.push(res.status);
        if (seen.length === 1) plugin.child.kill("SIGTERM");
      }
    })(),
  );
  await watching;
  assert.deepEqual(seen, [Status.SERVING, Status.NOT_SERVING]);
  await plugin.stop();
});

test("gRPC-web clients reach a network plugin over HTTP/1.1", async () => {
  const plugin = await startNetworkPlugin();
  try {
    const kv = createClient(
      KV,
      createGrpcWebTransport({ baseUrl: plugin.url, httpVersion: "1.1" }),
    );
    await kv.put({ key: "web", value: encode("grpc-web") });
    assert.equal(decode((await kv.get({ key: "web" })).value), "grpc-web");
  } finally {
    await plugin.stop();
  }
});

for (const [where, source] of [
  ["subprocess", () => fixture("kv")],
  ["in process", () => inProcess(faultyKvDefinition())],
] as const) {
  test(`${where}: a caller's cancellation reaches the plugin's handler`, async () => {
    const client = kvClient(source());
    await client.start();
    const kv = client.dispense("kv");
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(
      kv.get({ key: "slow:10000" }, { signal: abort.signal }),
      (e: unknown) => ConnectError.from(e).code === Code.Canceled,
    );
    await waitFor(
      "the plugin to see the cancellation",
      async () => (await kv.get({ key: "cancelled" })).found,
    );
    await client.close();
  });
}

test("host interceptors see every call, but never the launch token", async () => {
  const seenAuth: Array<string | null> = [];
  const methods: string[] = [];
  const addHeader: Interceptor = (next) => (req) => {
    seenAuth.push(req.header.get("authorization"));
    methods.push(req.method.name);
    req.header.set("x-echo", "from-interceptor");
    return next(req);
  };
  const client = kvClient(fixture("kv"), { interceptors: [addHeader] });
  await client.start();
  let echoed: string | null = null;
  await client
    .dispense("kv")
    .get({ key: "headers" }, { onHeader: (h) => (echoed = h.get("x-echo")) });
  assert.equal(echoed, "from-interceptor");
  await client.close();
  assert.deepEqual(methods, ["Handshake", "Get", "Shutdown"]);
  assert.deepEqual(seenAuth, [null, null, null]);
});

test("a plugin that announces go-plugin's net/rpc gets a clear error", async () => {
  const client = kvClient(fixture("netrpc"));
  await assert.rejects(client.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.equal(e.kind, "unsupported-protocol");
    assert.match(
      e.message,
      /speaks the unsupported protocol "netrpc"; connect-plugin hosts speak "connect" and "grpc" \(go-plugin's net\/rpc is not supported\)/,
    );
    return true;
  });
});

test("a host running with CONNECT_PLUGIN_LISTEN does not pass it to its plugins", async () => {
  process.env.CONNECT_PLUGIN_LISTEN = "127.0.0.1:0";
  try {
    const client = kvClient(fixture("kv"), { startTimeoutMs: 10_000 });
    await client.start();
    assert.equal((await client.dispense("kv").get({ key: "x" })).found, false);
    await client.close();
  } finally {
    delete process.env.CONNECT_PLUGIN_LISTEN;
  }
});

test("the host's grace period caps the plugin's drain", async () => {
  const client = kvClient(fixture("kv", { FIXTURE_GRACE_MS: "10000" }), { gracePeriodMs: 300 });
  await client.start();
  const call = timed(client.dispense("kv").get({ key: "slow:5000" }));
  await new Promise((r) => setTimeout(r, 100));
  const closing = await timed(client.close());
  assert.ok(closing.ms < 2_000, `close took ${closing.ms.toFixed(0)} ms, not the plugin's 10 s`);
  expectUnavailable(/plugin shut down before the call finished|was closed/)((await call).error);
});

test("a plugin launched go-plugin style exits when its parent dies", async () => {
  const parentMain = fileURLToPath(new URL("./fixtures/parent-then-die.js", import.meta.url));
  const parent = spawn(process.execPath, [parentMain], { stdio: ["ignore", "pipe", "inherit"] });
  const pluginPid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    parent.once("exit", (code) => reject(new Error(`parent exited early with ${code}`)));
  });
  assert.ok(isAlive(pluginPid));
  parent.kill("SIGKILL");
  await waitFor("the plugin to notice its parent is gone", () => !isAlive(pluginPid), 5_000);
});

test("a network plugin with allowRemoteShutdown stops on the Shutdown call", async () => {
  const handle = await serve(faultyKvDefinition(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    allowRemoteShutdown: true,
  });
  const controller = createClient(
    PluginController,
    createConnectTransport({ baseUrl: handle.url, httpVersion: "1.1" }),
  );
  await controller.shutdown({ reason: "operator asked" });
  const done = await timed(handle.done);
  assert.ok(done.ms < 3_000);
});
