import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ManagementError } from "../src/manifest/errors.js";
import { Supervisor, type SupervisorEvent } from "../src/manager/supervisor.js";
import { fixture, isAlive, kvClient, waitFor } from "./helpers.js";

function crashIt(client: ReturnType<typeof kvClient>): Promise<void> {
  return client
    .dispense("kv")
    .get({ key: "crash" })
    .then(
      () => assert.fail("the crash call returned"),
      (e: unknown) => assert.equal(ConnectError.from(e).code, Code.Unavailable),
    );
}

describe("Supervisor (standalone, around a PluginClient factory)", () => {
  test("one start for a burst of concurrent first callers", async () => {
    let made = 0;
    const sup = new Supervisor(() => (made++, kvClient(fixture("kv"))), { name: "kv" });
    try {
      const clients = await Promise.all(Array.from({ length: 20 }, () => sup.get()));
      assert.equal(made, 1);
      assert.ok(clients.every((c) => c === clients[0]));
      assert.equal(sup.state, "running");
    } finally {
      await sup.close();
    }
  });

  test("a crash is restarted with backoff; calls after it go to the new process", async () => {
    const events: SupervisorEvent[] = [];
    const sup = new Supervisor(() => kvClient(fixture("kv")), {
      name: "kv",
      restart: { maxRestarts: 3, windowMs: 60_000, initialBackoffMs: 50 },
      onEvent: (e) => events.push(e),
    });
    try {
      const first = await sup.get();
      const pid = first.pid as number;
      await crashIt(first);
      await waitFor("the restart", () => sup.state === "running" && sup.current !== first, 20_000);
      const second = await sup.get();
      assert.notEqual(second.pid, pid);
      assert.equal(isAlive(pid), false);
      await second.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
      assert.equal(sup.restarts, 1);
      const crashed = events.find((e) => e.type === "crashed");
      assert.ok(
        crashed?.type === "crashed" &&
          crashed.restartInMs === 50 &&
          crashed.exit.description.includes("SIGKILL"),
      );
    } finally {
      await sup.close();
    }
  });

  test("once the restart budget is spent, get() fails for good with a clear message", async () => {
    const sup = new Supervisor(() => kvClient(fixture("kv")), {
      name: "kv",
      restart: { maxRestarts: 2, windowMs: 60_000, initialBackoffMs: 10 },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const client = await sup.get();
        await crashIt(client);
        await waitFor(
          "the crash to be seen",
          () => sup.state !== "running" || sup.current !== client,
          20_000,
        );
      }
      assert.equal(sup.state, "failed");
      await assert.rejects(sup.get(), (e: unknown) => {
        assert.ok(e instanceof ManagementError);
        assert.equal(e.kind, "restart-budget-exhausted");
        assert.match(
          e.message,
          /^plugin "kv" crashed 3 times within 60 s, more than its restart budget of 2; not restarting it\. Last exit: the plugin was killed by SIGKILL/,
        );
        return true;
      });
    } finally {
      await sup.close();
    }
  });

  test("a restart that cannot start counts against the budget, so a plugin crashing at startup is not retried forever", async () => {
    let made = 0;
    const events: string[] = [];
    const sup = new Supervisor(
      () => kvClient(made++ === 0 ? fixture("kv") : fixture("exit-early")),
      {
        name: "kv",
        restart: { maxRestarts: 2, initialBackoffMs: 10 },
        onEvent: (e) => events.push(e.type),
      },
    );
    try {
      await crashIt(await sup.get());
      await waitFor("the supervisor to give up", () => sup.state === "failed", 30_000);
      assert.deepEqual(events, [
        "started",
        "crashed",
        "restart-failed",
        "restart-failed",
        "failed",
      ]);
      assert.equal(made, 3);
      await assert.rejects(
        sup.get(),
        /crashed 3 times within 60 s, more than its restart budget of 2; not restarting it\. Last exit: its restart failed: plugin .* exited with code 2 before completing its handshake/,
      );
    } finally {
      await sup.close();
    }
  });

  test("stop() is not a crash: the next get() starts it again without using the budget", async () => {
    const sup = new Supervisor(() => kvClient(fixture("kv")), {
      name: "kv",
      restart: { maxRestarts: 0 },
    });
    try {
      const first = await sup.get();
      await sup.stop();
      assert.equal(sup.state, "idle");
      const second = await sup.get();
      assert.notEqual(second, first);
      assert.equal(sup.restarts, 0);
    } finally {
      await sup.close();
    }
  });

  test("stop() during a restart backoff returns at once, and get() then starts afresh", async () => {
    const sup = new Supervisor(() => kvClient(fixture("kv")), {
      name: "kv",
      restart: { maxRestarts: 3, initialBackoffMs: 60_000, maxBackoffMs: 60_000 },
    });
    try {
      const first = await sup.get();
      await crashIt(first);
      await waitFor("the backoff", () => sup.state === "backoff", 20_000);
      const waiting = sup.get();
      await sup.stop();
      await assert.rejects(waiting, /plugin "kv" was stopped/);
      assert.equal(sup.state, "idle");
      const fresh = await sup.get();
      assert.notEqual(fresh, first);
    } finally {
      await sup.close();
    }
  });

  test("a failed start rejects the callers and the next get() tries again", async () => {
    let attempt = 0;
    const sup = new Supervisor(
      () => kvClient(attempt++ === 0 ? fixture("exit-early") : fixture("kv")),
      { name: "kv" },
    );
    try {
      await assert.rejects(sup.get(), /config file \/etc\/kv.conf not found|exited/);
      assert.equal(sup.state, "idle");
      const client = await sup.get();
      assert.equal(typeof client.pid, "number");
    } finally {
      await sup.close();
    }
  });
});

describe("Supervisor: stop() during a start, then a new get()", () => {
  test("the start begun before stop() fails as stopped; the caller after stop() gets the one running process", async () => {
    let release: (() => void) | undefined;
    const firstFactoryHeld = new Promise<void>((r) => (release = r));
    let made = 0;
    const sup = new Supervisor(
      async () => {
        made++;
        if (made === 1) await firstFactoryHeld; // launch L1 sits in the factory
        return kvClient(fixture("kv"));
      },
      { name: "kv" },
    );
    try {
      const before = sup.get();
      await waitFor("L1 in the factory", () => made === 1, 10_000);
      const stopping = sup.stop(); // waits for L1, so not awaited yet
      const after = sup.get(); // L2
      release?.();
      await stopping;
      await assert.rejects(before, (e: unknown) => {
        assert.ok(e instanceof ManagementError);
        assert.equal(e.kind, "stopped");
        assert.match(e.message, /plugin "kv" was stopped while starting/);
        return true;
      });
      const client = await after;
      assert.equal(sup.state, "running");
      assert.equal(sup.current, client);
      await client.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
      assert.equal(made, 2, "L1's client was never started; L2's is the running one");
    } finally {
      await sup.close();
    }
  });
});
