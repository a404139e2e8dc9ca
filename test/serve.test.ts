/**
 * The plugin side, seen from outside: how serve() behaves when started by
 * hand, by a host (its handshake line and private socket), and as a network
 * service reached by plain HTTP/1.1, gRPC health probes and Connect clients.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:net";

import { dirname } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, createConnectTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import {
  HealthResponse_Status,
  PluginController,
} from "../src/gen/connectplugin/v1/controller_pb.js";
import { PluginClient, PluginError, inProcess, remote, silentLogger } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { faultyKvDefinition } from "./fixtures/faulty-kv.js";
import { STREAMS_UNCLAIMED_WARNING } from "../src/transport/h2-streams.js";
import { startNetworkPlugin, waitFor, kvClient, tempDir } from "./helpers.js";
import { fileURLToPath } from "node:url";

const fixtureMain = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));

/** Runs the fixture plugin by hand with the given environment. */
function runPlugin(env: Record<string, string>) {
  const child = spawn(process.execPath, [fixtureMain, "kv"], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

const cookie = { KV_PLUGIN: "hello" };

test("started by hand, a plugin explains itself on stderr and exits 1", async () => {
  const run = runPlugin({});
  assert.equal(await run.exited, 1);
  assert.equal(run.stdout(), "", "nothing on stdout");
  assert.match(run.stderr(), /This binary is a plugin \(the magic cookie KV_PLUGIN is not set\)/);
  assert.match(run.stderr(), /Plugins are not meant to be executed directly/);
  assert.match(run.stderr(), /set CONNECT_PLUGIN_LISTEN=HOST:PORT/);
});

test("launched, a plugin prints one handshake line and listens in a private directory", async () => {
  const run = runPlugin({
    ...cookie,
    PLUGIN_PROTOCOL_VERSIONS: "1",
    CONNECT_PLUGIN_TRANSPORTS: "connect",
  });
  await waitFor("the handshake line", () => run.stdout().includes("\n"));
  const line = run.stdout();
  const match = /^1\|1\|unix\|(\/[^|]+\/cp-[^/|]+\/plugin\.sock)\|connect\|\n$/.exec(line);
  assert.ok(match, `unexpected handshake line ${JSON.stringify(line)}`);
  const socket = match[1] ?? "";
  assert.equal(statSync(dirname(socket)).mode & 0o777, 0o700, "socket directory is private");
  assert.ok(statSync(socket).isSocket());
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 0);
  assert.equal(existsSync(dirname(socket)), false, "socket directory removed on exit");
  assert.equal(run.stdout(), line, "nothing else was written to stdout");
});

test("launched, a plugin answers only callers with its launch token", async () => {
  const run = runPlugin({
    ...cookie,
    CONNECT_PLUGIN_TRANSPORTS: "connect",
    CONNECT_PLUGIN_LAUNCH_TOKEN: "stdin",
  });
  run.child.stdin.write("s3cret\n");
  await waitFor("the handshake line", () => run.stdout().includes("\n"));
  const socket = run.stdout().split("|")[3] ?? "";
  const transport = (token?: string) =>
    createConnectTransport({
      baseUrl: "http://localhost",
      httpVersion: "2",
      nodeOptions: { createConnection: () => connect(socket) },
      interceptors:
        token === undefined
          ? []
          : [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
    });
  try {
    for (const token of [undefined, "wrong", "s3cret-but-longer"]) {
      await assert.rejects(createClient(KV, transport(token)).get({ key: "a" }), (e: unknown) => {
        const ce = ConnectError.from(e);
        return (
          ce.code === Code.Unauthenticated &&
          /only answers the host that launched it/.test(ce.rawMessage)
        );
      });
    }
    assert.equal((await createClient(KV, transport("s3cret")).get({ key: "a" })).found, false);
    const health = await createClient(Health, transport()).check({ service: "plugin" });
    assert.equal(health.status, HealthCheckResponse_ServingStatus.SERVING, "health needs no token");
    // The controller's Health is a health check too (as in the Go and Python
    // plugins); Handshake and Shutdown are not.
    const controller = createClient(PluginController, transport());
    assert.equal((await controller.health({})).status, HealthResponse_Status.SERVING);
    // Without the token it tells the serving state only: not how many calls
    // the host has in flight.
    const slow = new AbortController();
    const pending = createClient(KV, transport("s3cret"))
      .get({ key: "slow:60000" }, { signal: slow.signal })
      .catch(() => undefined);
    try {
      const own = createClient(PluginController, transport("s3cret"));
      await waitFor(
        "the slow call in flight",
        async () => (await own.health({})).callsInFlight > 0,
        30_000,
      );
      const health = await controller.health({});
      assert.equal(health.status, HealthResponse_Status.SERVING);
      assert.equal(health.callsInFlight, 0, "no activity shown without the token");
    } finally {
      slow.abort();
      await pending;
    }
    for (const call of [
      () => controller.handshake({ protocolVersions: [1] }),
      () => controller.shutdown({ reason: "not mine to stop" }),
    ]) {
      await assert.rejects(
        call(),
        (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated,
      );
    }
  } finally {
    run.child.kill("SIGTERM");
    assert.equal(await run.exited, 0);
  }
});

test("launched, a plugin ignores SIGINT (its host decides) and stops on SIGTERM", async () => {
  const run = runPlugin({ ...cookie, CONNECT_PLUGIN_TRANSPORTS: "connect" });
  await waitFor("the handshake line", () => run.stdout().includes("\n"));
  run.child.kill("SIGINT");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(run.child.exitCode, null, "still running after SIGINT");
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 0);
});

test("launched by a go-plugin host, the line announces grpc and honours PLUGIN_UNIX_SOCKET_DIR", async () => {
  const dir = tempDir("sockdir-");
  const run = runPlugin({ ...cookie, PLUGIN_PROTOCOL_VERSIONS: "1", PLUGIN_UNIX_SOCKET_DIR: dir });
  await waitFor("the handshake line", () => run.stdout().includes("\n"));
  assert.match(
    run.stdout(),
    new RegExp(`^1\\|1\\|unix\\|${dir}/cp-[^/|]+/plugin\\.sock\\|grpc\\|\\n$`),
  );
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 0);
});

test("where a unix socket path would be too long, a plugin uses loopback TCP", async () => {
  const dir = tempDir(`${"d".repeat(90)}-`);
  const run = runPlugin({
    ...cookie,
    PLUGIN_UNIX_SOCKET_DIR: dir,
    CONNECT_PLUGIN_TRANSPORTS: "connect",
  });
  await waitFor("the handshake line", () => run.stdout().includes("\n"));
  assert.match(run.stdout(), /^1\|1\|tcp\|127\.0\.0\.1:\d+\|connect\|\n$/);
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 0);
});

test("network mode serves plain HTTP/1.1 JSON (curl-style) on the same port as HTTP/2", async () => {
  const plugin = await startNetworkPlugin();
  try {
    const res = await fetch(`${plugin.url}/example.kv.v1.KV/Get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: "nothing" }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    const h2 = createClient(
      PluginController,
      createConnectTransport({ baseUrl: plugin.url, httpVersion: "2" }),
    );
    const hs = await h2.handshake({ protocolVersions: [1] });
    assert.equal(hs.protocolVersion, 1);
  } finally {
    assert.equal(await plugin.stop(), 0, "SIGTERM stops a network plugin with code 0");
  }
});

test("network mode serves unary calls from node:http2's streams: no compatibility-layer warning", async () => {
  // serve() logs STREAMS_UNCLAIMED_WARNING when node:http2 does not let the
  // lean path take its streams (claimStreams() returned false): a Node.js
  // that changed how it serves "request" shows here, not only in the bench.
  const run = runPlugin({ ...cookie, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" });
  try {
    await waitFor("the serving line", () => /"url":"[^"]+"/.test(run.stderr()), 20_000);
    const url = /"url":"([^"]+)"/.exec(run.stderr())?.[1] ?? "";
    const h2 = createClient(
      PluginController,
      createConnectTransport({ baseUrl: url, httpVersion: "2" }),
    );
    assert.equal((await h2.handshake({ protocolVersions: [1] })).protocolVersion, 1);
  } finally {
    run.child.kill("SIGTERM");
  }
  assert.equal(await run.exited, 0);
  assert.ok(!run.stderr().includes(STREAMS_UNCLAIMED_WARNING), run.stderr());
});

test("grpc.health.v1 answers for the server, go-plugin's 'plugin' and each service", async () => {
  const plugin = await startNetworkPlugin();
  try {
    const health = createClient(Health, createGrpcTransport({ baseUrl: plugin.url }));
    for (const service of ["", "plugin", "example.kv.v1.KV", "connectplugin.v1.PluginController"]) {
      const res = await health.check({ service });
      assert.equal(res.status, HealthCheckResponse_ServingStatus.SERVING, service);
    }
    await assert.rejects(health.check({ service: "no.such.Service" }), (e: unknown) => {
      const ce = ConnectError.from(e);
      return ce.code === Code.NotFound && /unknown service "no.such.Service"/.test(ce.rawMessage);
    });
  } finally {
    await plugin.stop();
  }
});

test("a network plugin refuses Shutdown from hosts by default", async () => {
  const plugin = await startNetworkPlugin();
  try {
    const controller = createClient(
      PluginController,
      createConnectTransport({ baseUrl: plugin.url, httpVersion: "1.1" }),
    );
    await assert.rejects(controller.shutdown({ reason: "test" }), (e: unknown) => {
      const ce = ConnectError.from(e);
      return (
        ce.code === Code.PermissionDenied &&
        /does not accept Shutdown from hosts/.test(ce.rawMessage)
      );
    });
    // Closing a remote client never stops the shared service.
    const client = kvClient(remote(plugin.url));
    await client.start();
    await client.close();
    assert.equal(plugin.child.exitCode, null, "still running");
    assert.equal((await controller.health({})).status, 1);
  } finally {
    await plugin.stop();
  }
});

test("remote: plaintext to a non-loopback host is refused unless allowed", () => {
  assert.throws(
    () => remote("http://10.1.2.3:8080"),
    /refusing plaintext http:\/\/ to non-loopback host 10\.1\.2\.3: use https:\/\/, or pass \{ allowPlaintext: true \}/,
  );
  assert.equal(remote("http://10.1.2.3:8080", { allowPlaintext: true }).url.host, "10.1.2.3:8080");
  assert.equal(remote("https://plugins.example.com").url.protocol, "https:");
  assert.equal(remote("http://127.0.0.1:1").url.hostname, "127.0.0.1");
  assert.equal(remote("http://[::1]:1").url.hostname, "[::1]");
  assert.throws(() => remote("ftp://x"), /must be http:\/\/ or https:\/\//);
});

test("remote: an endpoint that is not a connect-plugin server", async () => {
  const server = createServer((_req, res) => {
    res.statusCode = 404;
    res.end("not here");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const client = kvClient(remote(`http://127.0.0.1:${port}`, { httpVersion: "1.1" }));
    await assert.rejects(client.start(), (e: unknown) => {
      return (
        e instanceof PluginError &&
        e.kind === "not-a-plugin-server" &&
        /does not speak the connect-plugin protocol/.test(e.message)
      );
    });
  } finally {
    server.close();
  }
});

test("remote: an endpoint where nothing listens", async () => {
  const client = kvClient(remote("http://127.0.0.1:9"), { startTimeoutMs: 3_000 });
  await assert.rejects(client.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.equal(e.kind, "unreachable");
    assert.match(
      e.message,
      /^could not complete the handshake with http:\/\/127\.0\.0\.1:9\/: \[unavailable\] connect ECONNREFUSED 127\.0\.0\.1:9$/,
    );
    return true;
  });
});

test("remote: a version mismatch lists both sides' versions", async () => {
  const plugin = await startNetworkPlugin("version-3");
  try {
    const client = new PluginClient({
      handshake,
      versionedPlugins: { 1: { kv: KV }, 2: { kv: KV } },
      source: remote(plugin.url),
      logger: silentLogger,
    });
    await assert.rejects(client.start(), (e: unknown) => {
      assert.ok(e instanceof PluginError);
      assert.equal(e.kind, "version-mismatch");
      assert.match(
        e.message,
        /^protocol version mismatch with plugin http:\/\/127\.0\.0\.1:\d+\/: the plugin speaks \[3\], this host speaks \[1, 2\]$/,
      );
      return true;
    });
  } finally {
    await plugin.stop();
  }
});

test("in process: a version mismatch lists both sides' versions", async () => {
  const client = new PluginClient({
    handshake,
    versionedPlugins: { 4: { kv: KV }, 5: { kv: KV } },
    source: inProcess(faultyKvDefinition(2)),
    logger: silentLogger,
  });
  await assert.rejects(client.start(), (e: unknown) => {
    return (
      e instanceof PluginError &&
      e.kind === "version-mismatch" &&
      /the plugin speaks \[2\], this host speaks \[4, 5\]/.test(e.message)
    );
  });
});

test("a plugin that lacks a requested plugin fails the start, naming it", async () => {
  const Other = { ...KV, typeName: "example.other.v1.Other" } as typeof KV;
  const client = new PluginClient({
    handshake,
    plugins: { kv: KV, other: Other },
    source: inProcess(faultyKvDefinition()),
    logger: silentLogger,
  });
  await assert.rejects(
    client.start(),
    /plugin \(in process\) does not provide "other" at protocol version 1 \(it provides: "kv"\)$/,
  );
  await client.close();
});
