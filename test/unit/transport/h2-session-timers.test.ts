/**
 * H2Session's idle and PING timers (armed once, checked when they fire):
 * the idle close still comes after idleTimeoutMs without calls and never
 * while a call is in flight or calls keep coming; the PING watchdog still
 * finds a peer that went silent mid-call, and leaves a live one alone; no
 * timer keeps a process alive. Real sockets, a real TCP relay that can go
 * silent, a real child process.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { createH2Transport } from "../../../src/transport/client-transport.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { Bench } from "../../../bench/service.js";
import { waitFor } from "../../helpers.js";

/** echo answers after `x-delay` ms (0 when absent). */
const routes = (router: ConnectRouter): void => {
  router.service(Bench, {
    async echo(req, ctx) {
      const delay = Number(ctx.requestHeader.get("x-delay") ?? 0);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay).unref());
      return req;
    },
    async *stream() {},
  });
};

interface Server {
  readonly port: number;
  /** Sessions the server has seen, with when each closed (performance.now()). */
  readonly sessions: { closedAt?: number; pings: number }[];
  close(): void;
}

async function startServer(): Promise<Server> {
  const server = http2.createServer(createNodeAdapter({ routes }));
  const sessions: { closedAt?: number; pings: number }[] = [];
  const live = new Set<http2.Http2Session>();
  server.on("session", (s) => {
    const entry: { closedAt?: number; pings: number } = { pings: 0 };
    sessions.push(entry);
    live.add(s);
    s.on("ping", () => entry.pings++);
    s.once("close", () => {
      entry.closedAt = performance.now();
      live.delete(s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions,
    close: () => {
      server.close();
      for (const s of live) s.destroy();
    },
  };
}

describe("H2Session idle timer", () => {
  let server: Server;
  before(async () => (server = await startServer()));
  after(() => server.close());

  test("closes the session idleTimeoutMs after the last call ended, not before", async () => {
    const first = server.sessions.length;
    const t = createH2Transport(
      `http://127.0.0.1:${server.port}`,
      { idleTimeoutMs: 300 },
      { protocol: "connect" },
    );
    try {
      const client = createClient(Bench, t.transport);
      await client.echo({ value: new Uint8Array([1]) });
      const ended = performance.now();
      await waitFor("the idle close", () => server.sessions[first]?.closedAt !== undefined);
      const after = (server.sessions[first]?.closedAt ?? 0) - ended;
      assert.ok(after >= 250, `closed ${after.toFixed(0)} ms after the last call`);
      assert.equal(t.isBroken(), false, "an idle close is not a broken connection");
      // The next call gets a new session.
      await client.echo({ value: new Uint8Array([2]) });
      assert.equal(server.sessions.length, first + 2);
    } finally {
      t.close();
    }
  });

  test("never closes a session with a call in flight longer than idleTimeoutMs", async () => {
    const first = server.sessions.length;
    const t = createH2Transport(
      `http://127.0.0.1:${server.port}`,
      { idleTimeoutMs: 150 },
      { protocol: "grpc" },
    );
    try {
      const client = createClient(Bench, t.transport);
      const res = await client.echo(
        { value: new Uint8Array([3]) },
        { headers: { "x-delay": "700" } },
      );
      assert.deepEqual(res.value, new Uint8Array([3]));
      assert.equal(server.sessions[first]?.closedAt, undefined, "open when the call ended");
      assert.equal(server.sessions.length, first + 1);
      await waitFor(
        "the idle close after the call",
        () => server.sessions[first]?.closedAt !== undefined,
      );
    } finally {
      t.close();
    }
  });

  test("calls that keep coming, each within idleTimeoutMs of the last, keep one session", async () => {
    const first = server.sessions.length;
    const t = createH2Transport(
      `http://127.0.0.1:${server.port}`,
      { idleTimeoutMs: 600 },
      { protocol: "connect" },
    );
    try {
      const client = createClient(Bench, t.transport);
      // About 2 s of calls 40 ms apart: the first idle timer fires between
      // two calls and must re-arm for the rest of the idle time.
      const start = performance.now();
      while (performance.now() - start < 2_000) {
        await client.echo({ value: new Uint8Array([4]) });
        await new Promise((r) => setTimeout(r, 40));
      }
      assert.equal(server.sessions.length, first + 1, "one session for all the calls");
      assert.equal(server.sessions[first]?.closedAt, undefined);
    } finally {
      t.close();
    }
  });
});

/**
 * A TCP relay to `port` that can go silent: from then on it drops every
 * byte both ways and keeps the sockets open (a peer that hangs, or a
 * network that blackholes, without a FIN or RST).
 */
async function silentRelay(
  port: number,
): Promise<{ port: number; silence(): void; close(): void }> {
  let silent = false;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((down) => {
    const up = net.connect(port, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    down.on("data", (b) => silent || up.write(b));
    up.on("data", (b) => silent || down.write(b));
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    silence: () => (silent = true),
    close: () => {
      relay.close();
      for (const s of sockets) s.destroy();
    },
  };
}

describe("H2Session PING watchdog", () => {
  let server: Server;
  before(async () => (server = await startServer()));
  after(() => server.close());

  test("a peer that goes silent mid-call: the call fails soon after pingTimeoutMs, the session is broken", async () => {
    const relay = await silentRelay(server.port);
    const t = createH2Transport(
      `http://127.0.0.1:${relay.port}`,
      { pingIntervalMs: 100, pingTimeoutMs: 300 },
      { protocol: "grpc" },
    );
    try {
      const client = createClient(Bench, t.transport);
      // A first short call: the PING timer is armed by it and outlives it.
      await client.echo({ value: new Uint8Array([5]) });
      const call = client.echo({ value: new Uint8Array([6]) }, { headers: { "x-delay": "5000" } });
      const outcome = call.then(
        () => "answered",
        (e: unknown) => e,
      );
      await new Promise((r) => setTimeout(r, 50));
      relay.silence();
      const silencedAt = performance.now();
      const e = await outcome;
      assert.ok(e instanceof ConnectError, `the call failed: ${String(e)}`);
      assert.equal(e.code, Code.Unavailable);
      assert.match(e.message, /PING timed out/);
      const took = performance.now() - silencedAt;
      assert.ok(took < 10_000, `failed ${took.toFixed(0)} ms after the peer went silent`);
      // The stream closes before its session: the session is marked broken just after.
      await waitFor("the session marked broken", () => t.isBroken());
    } finally {
      t.close();
      relay.close();
    }
  });

  test("a live peer's long call is not cut off, and PINGs are sent while it runs", async () => {
    const first = server.sessions.length;
    const t = createH2Transport(
      `http://127.0.0.1:${server.port}`,
      { pingIntervalMs: 100, pingTimeoutMs: 500 },
      { protocol: "connect" },
    );
    try {
      const client = createClient(Bench, t.transport);
      await client.echo({ value: new Uint8Array([7]) });
      const res = await client.echo(
        { value: new Uint8Array([8]) },
        { headers: { "x-delay": "1000" } },
      );
      assert.deepEqual(res.value, new Uint8Array([8]));
      const pings = server.sessions[first]?.pings ?? 0;
      assert.ok(pings >= 3, `${pings} PINGs during a 1 s call at a 100 ms interval`);
      // No PINGs while no call is in flight.
      await new Promise((r) => setTimeout(r, 400));
      const idlePings = (server.sessions[first]?.pings ?? 0) - pings;
      assert.ok(idlePings <= 1, `${idlePings} PINGs sent while idle`);
      assert.equal(server.sessions.length, first + 1);
    } finally {
      t.close();
    }
  });
});

test("no session timer keeps a process alive: a host that made calls and never closed its transport exits", async () => {
  const server = await startServer();
  try {
    const transportModule = fileURLToPath(
      new URL("../../../src/transport/client-transport.js", import.meta.url),
    );
    const benchModule = fileURLToPath(new URL("../../../bench/service.js", import.meta.url));
    const script = `
      const { createH2Transport } = await import(${JSON.stringify(transportModule)});
      const { Bench } = await import(${JSON.stringify(benchModule)});
      const { createClient } = await import("@connectrpc/connect");
      const t = createH2Transport("http://127.0.0.1:${server.port}", {}, { protocol: "grpc" });
      const client = createClient(Bench, t.transport);
      await client.echo({ value: new Uint8Array([1]) });
      await client.echo({ value: new Uint8Array([2]) }, { headers: { "x-delay": "50" } });
      console.log("done");
    `;
    const started = performance.now();
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--input-type=module", "-e", script],
        { timeout: 20_000, cwd: fileURLToPath(new URL("../../../", import.meta.url)) },
        (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message} ${stderr}`)) : resolve(stdout),
      );
    });
    assert.equal(out.trim(), "done");
    // The default idle time is 15 min and the PING interval 15 s: exiting
    // well within either shows neither timer holds the process.
    assert.ok(performance.now() - started < 15_000);
  } finally {
    server.close();
  }
});
