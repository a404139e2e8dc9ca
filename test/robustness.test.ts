/**
 * The corners: crashes with children, a host that dies, close() during
 * start(), throwing listeners, remote connections that break, shutdown that
 * cancels calls, and options that must not be bypassed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

import {
  PluginClient,
  PluginError,
  inProcess,
  remote,
  serve,
  silentLogger,
  type RemoteSource,
} from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { faultyKvDefinition } from "./fixtures/faulty-kv.js";
import {
  fixture,
  isAlive,
  MemoryLogger,
  startNetworkPlugin,
  timed,
  waitFor,
  kvClient,
  expectUnavailable,
  tempDir,
} from "./helpers.js";

test("a crashed plugin's children are killed with it", async () => {
  const pidFile = join(tempDir("cp-test-"), "grandchild.pid");
  const client = kvClient(fixture("grandchild", { GRANDCHILD_PID_FILE: pidFile }));
  await client.start();
  const grandchild = Number(readFileSync(pidFile, "utf8"));
  await client
    .dispense("kv")
    .get({ key: "crash" })
    .catch(() => {});
  await waitFor("the grandchild to die after the crash", () => !isAlive(grandchild), 3_000);
  await client.close();
});

test("a plugin whose host was SIGKILLed shuts down cleanly and removes its socket directory", async () => {
  const socketParent = tempDir("cp-host-");
  const hostMain = fileURLToPath(new URL("./fixtures/host-then-die.js", import.meta.url));
  const host = spawn(process.execPath, [hostMain], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, PLUGIN_UNIX_SOCKET_DIR: socketParent },
  });
  const pluginPid = await new Promise<number>((resolve, reject) => {
    host.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    host.once("exit", (code) => reject(new Error(`host exited early with ${code}`)));
  });
  const socketFiles = (): string[] =>
    readdirSync(socketParent, { recursive: true, encoding: "utf8" }).filter((p) =>
      p.endsWith(".sock"),
    );
  assert.equal(socketFiles().length, 1, "the plugin's socket exists");
  host.kill("SIGKILL");
  await waitFor("the orphaned plugin to exit", () => !isAlive(pluginPid), 5_000);
  // The host's own directory stays (it was killed before it could remove
  // it), but the plugin removed its socket and socket directory.
  assert.deepEqual(socketFiles(), [], "the socket was removed");
  assert.ok(
    readdirSync(socketParent).every((d) => readdirSync(join(socketParent, d)).length === 0),
  );
});

test("close() during start() abandons the start at once", async () => {
  const logger = new MemoryLogger();
  const client = kvClient(fixture("hang"), { logger, startTimeoutMs: 30_000 });
  const starting = timed(client.start());
  await waitFor("the plugin to run", () =>
    logger.messages("stderr").includes("warming up forever"),
  );
  const closing = await timed(client.close());
  assert.ok(closing.ms < 3_000, `close took ${closing.ms.toFixed(0)} ms`);
  const start = await starting;
  assert.ok(start.error instanceof PluginError);
  assert.equal(start.error.kind, "not-running");
  assert.match(start.error.message, /was closed while starting/);
  assert.equal(client.pid, undefined, "no process was kept");
});

test("an onExit listener that throws does not crash the host or change call errors", async () => {
  const logger = new MemoryLogger();
  const client = kvClient(fixture("kv"), { logger });
  await client.start();
  client.onExit(() => {
    throw new Error("listener bug");
  });
  const call = await timed(client.dispense("kv").get({ key: "crash" }));
  expectUnavailable(/was killed by SIGKILL during the call/)(call.error);
  await waitFor("the listener error to be logged", () =>
    logger.records.some((r) => r.message.includes("listener bug")),
  );
  assert.match(
    logger.records.find((r) => r.message.includes("listener bug"))?.message ?? "",
    /an onExit listener threw: Error: listener bug/,
  );
  await client.close();
});

for (const httpVersion of ["2", "1.1"] as const) {
  test(`remote over HTTP/${httpVersion}: a plugin that dies mid-call fails the call with Unavailable`, async () => {
    const plugin = await startNetworkPlugin();
    const client = kvClient(remote(plugin.url, { httpVersion }));
    await client.start();
    const call = await timed(client.dispense("kv").get({ key: "crash" }));
    expectUnavailable(
      /^lost the connection to plugin http:\/\/127\.0\.0\.1:\d+\/ during the call: /,
    )(call.error);
    await client.close();
    await plugin.stop();
  });

  for (const protocol of httpVersion === "2"
    ? (["connect", "grpc"] as const)
    : (["connect"] as const)) {
    test(`remote over HTTP/${httpVersion} (${protocol}): a plugin that dies mid-stream fails the stream with Unavailable`, async () => {
      // The host's lean HTTP/2 server streams settle their call beneath the
      // interceptors: CallGuard must still see the error before the call's
      // signal fires (it took a fired signal for the caller's cancel and
      // passed on "[canceled] http/2 stream closed with error code CANCEL").
      const plugin = await startNetworkPlugin();
      const client = kvClient(remote(plugin.url, { httpVersion, protocol }));
      await client.start();
      const received: number[] = [];
      const run = await timed(
        (async () => {
          for await (const event of client.dispense("kv").watch({ key: "crash-after:2" }))
            received.push(event.value[0] ?? -1);
        })(),
      );
      assert.deepEqual(received, [0, 1], "messages before the crash arrived");
      expectUnavailable(
        /^lost the connection to plugin http:\/\/127\.0\.0\.1:\d+\/ during the call: /,
      )(run.error);
      await client.close();
      await plugin.stop();
    });
  }

  test(`remote over HTTP/${httpVersion}: close() ends calls in flight and refuses later ones`, async () => {
    const plugin = await startNetworkPlugin();
    const client = kvClient(remote(plugin.url, { httpVersion }), { gracePeriodMs: 200 });
    await client.start();
    const kv = client.dispense("kv");
    const stuck = timed(kv.get({ key: "slow:30000" }));
    await new Promise((r) => setTimeout(r, 100));
    const closing = await timed(client.close());
    assert.ok(closing.ms < 2_000, `close took ${closing.ms.toFixed(0)} ms`);
    expectUnavailable(/was closed/)((await stuck).error);
    await assert.rejects(
      kv.get({ key: "a" }),
      expectUnavailable(/^plugin http:\/\/127\.0\.0\.1:\d+\/ was closed$/),
    );
    assert.equal(plugin.child.exitCode, null, "the remote service keeps running");
    await plugin.stop();
  });
}

test("in process: close() honours the grace period and ends calls still running", async () => {
  const client = kvClient(inProcess(faultyKvDefinition()), { gracePeriodMs: 200 });
  await client.start();
  const stuck = timed(client.dispense("kv").get({ key: "slow:30000" }));
  await new Promise((r) => setTimeout(r, 50));
  const closing = await timed(client.close());
  assert.ok(closing.ms < 1_500, `close took ${closing.ms.toFixed(0)} ms`);
  expectUnavailable(/was closed|shut down before the call finished/)((await stuck).error);
});

test("a stream cut short by a plugin's shutdown ends with Unavailable, not an internal error", async () => {
  const plugin = await startNetworkPlugin("kv", { FIXTURE_GRACE_MS: "200" });
  const client = kvClient(remote(plugin.url));
  await client.start();
  let first!: () => void;
  const gotFirst = new Promise<void>((r) => (first = r));
  const watching = timed(
    (async () => {
      for await (const _ of client.dispense("kv").watch({ key: "w" })) first();
    })(),
  );
  await gotFirst;
  plugin.child.kill("SIGTERM");
  const result = await watching;
  expectUnavailable(/plugin shut down before the call finished/)(result.error);
  await client.close();
});

// A handler that waits through a Node API (timers/promises, events.on) with
// its signal rejects with a plain AbortError when the shutdown cancels it:
// the host must still learn the plugin shut down (Unavailable, which it may
// retry elsewhere), not get an internal error.
for (const transport of ["framed", "http"] as const) {
  test(`remote over ${transport}: a call whose Node API wait the shutdown cancels ends with Unavailable`, async () => {
    const plugin = await startNetworkPlugin("kv", { FIXTURE_GRACE_MS: "200" });
    const client = kvClient(remote(plugin.url, { transport }));
    await client.start();
    const call = timed(client.dispense("kv").get({ key: "node-wait:30000" }));
    await new Promise((r) => setTimeout(r, 100));
    plugin.child.kill("SIGTERM");
    expectUnavailable(/plugin shut down before the call finished/)((await call).error);
    await client.close();
  });
}

test("serve() in network mode removes its signal handlers once shut down", async () => {
  const before = process.listenerCount("SIGTERM");
  const handle = await serve(faultyKvDefinition(), { listen: "127.0.0.1:0", exitProcess: false });
  assert.equal(process.listenerCount("SIGTERM"), before + 1);
  await handle.shutdown("test");
  await handle.done;
  assert.equal(process.listenerCount("SIGTERM"), before);
});

test("plaintext checks cannot be bypassed", () => {
  assert.throws(
    () => remote("http://evil.localhost:8080"),
    /refusing plaintext http:\/\/ to non-loopback host evil\.localhost/,
  );
  const handMade: RemoteSource = {
    kind: "remote",
    url: new URL("http://10.0.0.1:80"),
    protocol: "connect",
    httpVersion: "2",
    allowPlaintext: false,
  };
  assert.throws(
    () => new PluginClient({ handshake, plugins: { kv: KV }, source: handMade }),
    /refusing plaintext http:\/\/ to non-loopback host 10\.0\.0\.1/,
  );
});

test("dispenseAt() gives the client of one protocol version, and refuses another", async () => {
  const client = new PluginClient({
    handshake,
    versionedPlugins: { 1: { kv: KV }, 2: { kv: KV } },
    source: inProcess(faultyKvDefinition(1)),
    logger: silentLogger,
  });
  await client.start();
  assert.equal(client.protocolVersion, 1);
  assert.equal((await client.dispenseAt(1, "kv").get({ key: "x" })).found, false);
  assert.throws(
    () => client.dispenseAt(2, "kv"),
    /cannot dispense "kv" at protocol version 2: plugin \(in process\) agreed on version 1/,
  );
  await client.close();
});

test("a host that exits without close() still kills its plugin and removes its socket directory", async () => {
  const socketParent = tempDir("cp-exit-");
  const hostMain = fileURLToPath(new URL("./fixtures/host-then-die.js", import.meta.url));
  const host = spawn(process.execPath, [hostMain, "exit"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, PLUGIN_UNIX_SOCKET_DIR: socketParent },
  });
  let out = "";
  host.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => host.once("exit", resolve));
  assert.equal(code, 0);
  const pluginPid = Number(out.trim());
  assert.ok(pluginPid > 0, `host printed ${JSON.stringify(out)}`);
  await waitFor("the plugin to die with its host", () => !isAlive(pluginPid), 3_000);
  assert.deepEqual(readdirSync(socketParent), [], "nothing left in the socket directory");
});

test("a remote server stream the caller abandons (break, then abort) does not hold up close()", async () => {
  const plugin = await startNetworkPlugin();
  try {
    const client = kvClient(remote(plugin.url), { gracePeriodMs: 3_000 });
    await client.start();
    const kv = client.dispense("kv");
    for (let i = 0; i < 3; i++) {
      // Leaving a for-await loop does not cancel an RPC in connect-es; the
      // signal does. The guard must forget the call then, not at close().
      const abort = new AbortController();
      for await (const _ of kv.watch({ key: "abandoned" }, { signal: abort.signal })) break;
      abort.abort();
    }
    const closing = await timed(client.close());
    assert.ok(closing.ms < 1_000, `close waited ${closing.ms.toFixed(0)} ms for abandoned streams`);
  } finally {
    await plugin.stop();
  }
});

test("errors made on the host's side are not mistaken for a lost connection", async () => {
  const refuse: Interceptor = (next) => (req) => {
    if (req.method.name === "Get") throw new ConnectError("policy says no", Code.PermissionDenied);
    if (req.method.name === "Put") throw new Error("interceptor bug");
    return next(req);
  };
  const client = kvClient(fixture("kv"), { interceptors: [refuse] });
  await client.start();
  const kv = client.dispense("kv");
  // A deadline far beyond any busy machine's delay: a call that failed by
  // running into it would have been mistaken for something else.
  const timeoutMs = 60_000;
  const denied = await timed(kv.get({ key: "a" }, { timeoutMs }));
  assert.ok(denied.error !== undefined, "the refused call failed");
  assert.equal(ConnectError.from(denied.error).code, Code.PermissionDenied);
  assert.equal(ConnectError.from(denied.error).rawMessage, "policy says no");
  const bug = await timed(kv.put({ key: "a" }, { timeoutMs }));
  assert.ok(bug.error !== undefined, "the interceptor's bug failed the call");
  assert.equal(ConnectError.from(bug.error).rawMessage, "interceptor bug");
  assert.equal(ConnectError.from(bug.error).code, Code.Unknown);
  const failingStream = await timed(
    kv.putMany(
      (async function* () {
        yield { key: "x" };
        throw new Error("the caller's own stream failed");
      })(),
      { timeoutMs },
    ),
  );
  assert.ok(failingStream.error !== undefined, "a call whose input failed must not succeed");
  const streamError = ConnectError.from(failingStream.error);
  assert.notEqual(streamError.code, Code.Unavailable, streamError.message);
  assert.notEqual(streamError.code, Code.DeadlineExceeded, streamError.message);
  assert.match(streamError.message, /the caller's own stream failed/);
  // The plugin is still there and answers: nothing was mistaken for a lost connection.
  assert.equal((await client.dispense("kv").putMany((async function* () {})())).count, 0);
  await client.close();
});

test("a socket directory that cannot be made is a clear spawn error", async () => {
  const client = kvClient(fixture("kv", { PLUGIN_UNIX_SOCKET_DIR: "/nonexistent/sockets" }));
  await assert.rejects(client.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.equal(e.kind, "spawn-failed");
    assert.match(
      e.message,
      /cannot create its socket directory in \/nonexistent\/sockets \(ENOENT/,
    );
    return true;
  });
});
