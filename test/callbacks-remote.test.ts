/**
 * Callbacks with a remote plugin shared by several hosts: each host reaches
 * only its own services, an authenticated plugin ties a tunnel to its
 * principal, the tunnel passes (and survives) the chaos suite's proxy, and
 * a host killed during a callback fails it at once.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FaultProxy } from "../chaos/proxy.js";
import { bearerAuth, remote } from "../src/index.js";
import {
  HostCallbacks,
  TunnelRequestSchema,
} from "../src/gen/connectplugin/v1/host_callbacks_pb.js";
import {
  callbackPluginMain,
  jobsClient,
  lastFailure,
  progressService,
} from "./callbacks-helpers.js";
import { startNetworkPlugin, waitFor } from "./helpers.js";

const started: Array<Awaited<ReturnType<typeof startNetworkPlugin>>> = [];
const networkPlugin = async (env: Record<string, string> = {}): Promise<string> => {
  const plugin = await startNetworkPlugin("", env, callbackPluginMain);
  started.push(plugin);
  return plugin.url;
};
after(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

/** Sets a header on every call: a host that presents a session id it was not given. */
const forgeSession =
  (session: string): Interceptor =>
  (next) =>
  (req) => {
    const header = new Headers(req.header);
    header.set("connect-plugin-session", session);
    return next({ ...req, header });
  };

describe("callbacks: two hosts on one remote plugin", () => {
  test("each host's calls reach its own services, interleaved", async () => {
    const url = await networkPlugin();
    const a = progressService("host A");
    const b = progressService("host B");
    const hostA = jobsClient(remote(url), [a.service]);
    const hostB = jobsClient(remote(url), [b.service]);
    await Promise.all([hostA.start(), hostB.start()]);
    try {
      const runs = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? hostA : hostB).dispense("jobs").run({ name: "stream" }),
        ),
      );
      runs.forEach((res, i) =>
        assert.equal(res.notes[0], `host=host ${i % 2 === 0 ? "A" : "B"}`, `run ${i}`),
      );
      await Promise.all([
        hostA.dispense("jobs").run({ name: "unary", steps: 2 }),
        hostB.dispense("jobs").run({ name: "unary", steps: 3 }),
      ]);
      assert.deepEqual(a.log.reports, ["unary 1/2", "unary 2/2"]);
      assert.deepEqual(b.log.reports, ["unary 1/3", "unary 2/3", "unary 3/3"]);
    } finally {
      await Promise.all([hostA.close(), hostB.close()]);
    }
  });

  test("a session id no host opened a tunnel for reaches nothing", async () => {
    const url = await networkPlugin();
    const host = jobsClient(remote(url), [progressService("A").service]);
    await host.start();
    const stranger = jobsClient(remote(url), [], {
      interceptors: [forgeSession("x".repeat(43))],
    });
    await stranger.start();
    try {
      const res = await stranger.dispense("jobs").run({ name: "unary", steps: 1 });
      assert.match(
        res.notes[0] ?? "",
        /^error:Unavailable: cannot call the host back: the host opened no callback tunnel within 5000 ms/,
      );
    } finally {
      await Promise.all([host.close(), stranger.close()]);
    }
  });
});

describe("callbacks: an authenticated remote plugin", () => {
  test("a tunnel belongs to its principal: another principal cannot use or take it", async () => {
    const url = await networkPlugin({ CALLBACK_TOKENS: "token-a,token-b" });
    const a = progressService("host A");
    const hostA = jobsClient(remote(url), [a.service], { interceptors: [bearerAuth("token-a")] });
    const hostB = jobsClient(remote(url), [progressService("host B").service], {
      interceptors: [bearerAuth("token-b")],
    });
    await Promise.all([hostA.start(), hostB.start()]);
    try {
      assert.deepEqual(
        (await hostA.dispense("jobs").run({ name: "stream" })).notes[0],
        "host=host A",
      );
      assert.deepEqual(
        (await hostB.dispense("jobs").run({ name: "stream" })).notes[0],
        "host=host B",
      );
      // Host A's session id, as a plugin that leaked it would give it away.
      const session = (await hostA.dispense("jobs").run({ name: "session" })).notes[0] ?? "";
      assert.match(session, /^[A-Za-z0-9_-]{43}$/);

      // Principal B presenting A's session: its callbacks are refused.
      const thief = jobsClient(remote(url), [], {
        interceptors: [bearerAuth("token-b"), forgeSession(session)],
      });
      await thief.start();
      try {
        const res = await thief.dispense("jobs").run({ name: "unary", steps: 1 });
        assert.match(
          res.notes[0] ?? "",
          /^error:PermissionDenied: cannot call the host back: its callback tunnel was opened by another principal/,
        );
      } finally {
        await thief.close();
      }
      assert.deepEqual(a.log.reports, [], "host A's service was never called by the thief");

      // Principal B opening a tunnel under A's session: refused.
      const transport = createConnectTransport({ baseUrl: url, httpVersion: "2" });
      const abort = new AbortController();
      const tunnel = createClient(HostCallbacks, transport).tunnel(
        (async function* () {
          yield create(TunnelRequestSchema);
          await new Promise((resolve) => setTimeout(resolve, 10_000).unref());
        })(),
        {
          headers: { authorization: "Bearer token-b", "connect-plugin-session": session },
          signal: abort.signal,
        },
      );
      await assert.rejects(
        (async () => {
          for await (const _ of tunnel) break;
        })(),
        (e: unknown) =>
          ConnectError.from(e).code === Code.PermissionDenied &&
          /belongs to another principal/.test(ConnectError.from(e).rawMessage),
      );
      abort.abort();
      // A's tunnel still works.
      assert.equal((await hostA.dispense("jobs").run({ name: "stream" })).notes[0], "host=host A");

      // No credentials: the tunnel is refused like any call.
      const anonymous = createClient(HostCallbacks, transport).tunnel((async function* () {})(), {
        headers: { "connect-plugin-session": "y".repeat(43) },
      });
      await assert.rejects(
        (async () => {
          for await (const _ of anonymous) break;
        })(),
        (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated,
      );
    } finally {
      await Promise.all([hostA.close(), hostB.close()]);
    }
  });
});

describe("callbacks: through the chaos suite's proxy", () => {
  test("callbacks pass the proxy, and come back after it resets every connection", async () => {
    const url = new URL(await networkPlugin());
    const proxy = new FaultProxy({ host: url.hostname, port: Number(url.port) });
    await proxy.start();
    const progress = progressService("behind a proxy");
    const host = jobsClient(remote(`http://127.0.0.1:${proxy.port}`), [progress.service]);
    await host.start();
    try {
      const jobs = host.dispense("jobs");
      assert.equal((await jobs.run({ name: "stream" })).notes[0], "host=behind a proxy");
      proxy.setFault({ kind: "latency", ms: 30 });
      const slow = await jobs.run({ name: "unary", steps: 2 });
      assert.deepEqual(slow.notes, ["keep_going=true", "keep_going=true"]);
      proxy.setFault({ kind: "none" });

      const killed = proxy.reset();
      assert.ok(killed >= 1, `the proxy reset ${killed} connections`);
      // The host's next calls reconnect; the tunnel is reopened beside them.
      let attempts = 0;
      let notes: string[] = [];
      await waitFor(
        "callbacks to work again after the reset",
        async () => {
          attempts++;
          try {
            notes = (await jobs.run({ name: "stream" }, { timeoutMs: 8_000 })).notes;
            return true;
          } catch (error) {
            // Only the call that met the reset itself may fail.
            assert.equal(ConnectError.from(error).code, Code.Unavailable);
            return false;
          }
        },
        15_000,
      );
      assert.equal(notes[0], "host=behind a proxy");
      assert.ok(attempts <= 3, `${attempts} attempts`);
    } finally {
      await host.close();
      await proxy.close();
    }
  });
});

describe("callbacks: the host is killed during a callback", () => {
  test("the plugin's pending callback fails with Unavailable at once", async () => {
    const url = await networkPlugin();
    const main = fileURLToPath(new URL("./fixtures/callback-host.js", import.meta.url));
    const child = spawn(process.execPath, [main, url], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("in-callback")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`host exited with ${code}: ${out}`)));
    });
    const killedAt = Date.now();
    child.kill("SIGKILL");
    const failure = await lastFailure(url);
    assert.match(failure.text, /^Unavailable@\d+ /);
    assert.ok(failure.at - killedAt < 1_000, `failed ${failure.at - killedAt} ms after the kill`);
  });
});
