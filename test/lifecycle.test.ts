/**
 * Ending a plugin: graceful close, kill after the grace period, crashes in
 * the middle of calls, no orphans, and a plugin that outlives its host.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { type PluginExit } from "../src/index.js";

import {
  decode,
  fixture,
  isAlive,
  timed,
  waitFor,
  kvClient,
  expectUnavailable,
  tempDir,
} from "./helpers.js";

test("close() lets a call in flight finish, then the plugin exits cleanly", async () => {
  const client = kvClient(fixture("kv"));
  await client.start();
  const exits: PluginExit[] = [];
  client.onExit((exit) => exits.push(exit));
  const kv = client.dispense("kv");
  await kv.put({ key: "a", value: new Uint8Array([1]) });
  const inFlight = kv.get({ key: "slow:400" });
  await new Promise((r) => setTimeout(r, 100));
  await client.close();
  const res = await inFlight;
  assert.equal(res.found, false, "the slow call completed normally");
  assert.equal(exits.length, 1);
  assert.deepEqual([exits[0]?.code, exits[0]?.signal, exits[0]?.expected], [0, null, true]);
  assert.equal(exits[0]?.description, "exited with code 0");
});

test("close() kills a plugin that does not stop within the grace period", async () => {
  const client = kvClient(fixture("kv"), { gracePeriodMs: 300 });
  await client.start();
  const pid = client.pid ?? -1;
  const kv = client.dispense("kv");
  const stuck = timed(kv.get({ key: "stuck:60000" }));
  await new Promise((r) => setTimeout(r, 100));
  const closing = await timed(client.close());
  assert.ok(closing.ms < 3_000, `close took ${closing.ms.toFixed(0)} ms`);
  assert.equal(client.exit?.signal, "SIGKILL");
  assert.equal(client.exit?.expected, true);
  assert.equal(isAlive(pid), false);
  const call = await stuck;
  assert.ok(call.error !== undefined, "the stuck call failed");
  expectUnavailable(/plugin .* was closed/)(call.error);
});

test("a crash in the middle of a unary call fails it at once with Unavailable", async () => {
  const client = kvClient(fixture("kv"));
  await client.start();
  const exited = new Promise<PluginExit>((resolve) => client.onExit(resolve));
  const kv = client.dispense("kv");
  const call = await timed(kv.get({ key: "crash" }));
  assert.ok(call.ms < 1_500, `settled after ${call.ms.toFixed(0)} ms`);
  expectUnavailable(/plugin .* was killed by SIGKILL during the call/)(call.error);
  const exit = await exited;
  assert.equal(exit.expected, false);
  assert.equal(exit.signal, "SIGKILL");
  assert.equal(exit.description, "was killed by SIGKILL");
  await client.close();
});

test("a crash in the middle of a stream ends the stream with Unavailable", async () => {
  const client = kvClient(fixture("kv"));
  await client.start();
  const kv = client.dispense("kv");
  const received: number[] = [];
  const run = timed(
    (async () => {
      for await (const event of kv.watch({ key: "crash-after:2" }))
        received.push(event.value[0] ?? -1);
    })(),
  );
  const result = await run;
  assert.deepEqual(received, [0, 1], "messages before the crash arrived");
  expectUnavailable(/was killed by SIGKILL during the call/)(result.error);
  await client.close();
});

test("every call in flight settles when the plugin dies, and later calls fail fast", async () => {
  const client = kvClient(fixture("kv"));
  await client.start();
  const kv = client.dispense("kv");
  const slow = Array.from({ length: 20 }, () => timed(kv.get({ key: "slow:30000" })));
  const streams = Array.from({ length: 5 }, () =>
    timed(
      (async () => {
        for await (const _ of kv.watch({ key: "idle" })) {
          // waits for changes that never come
        }
      })(),
    ),
  );
  await new Promise((r) => setTimeout(r, 200));
  const crash = await timed(kv.get({ key: "crash" }));
  expectUnavailable(/killed by SIGKILL/)(crash.error);
  const settled = await Promise.all([...slow, ...streams]);
  for (const call of settled) {
    assert.ok(call.ms < 3_000, `a call took ${call.ms.toFixed(0)} ms to settle`);
    expectUnavailable(/killed by SIGKILL/)(call.error);
  }
  const after = await timed(kv.get({ key: "a" }));
  assert.ok(after.ms < 100, `a call after the crash took ${after.ms.toFixed(0)} ms`);
  expectUnavailable(/^plugin .* was killed by SIGKILL(;|$)/)(after.error);
  assert.doesNotMatch(ConnectError.from(after.error).rawMessage, /during the call/);
  await client.close();
});

test("an error the plugin sends is not mistaken for a crash", async () => {
  const client = kvClient(fixture("kv"));
  await client.start();
  const kv = client.dispense("kv");
  await assert.rejects(
    kv.get({ key: "fail" }),
    (e: unknown) => ConnectError.from(e).code === Code.NotFound,
  );
  assert.equal(client.exit, undefined);
  const remaining = Number(decode((await kv.get({ key: "deadline" }, { timeoutMs: 1000 })).value));
  assert.ok(
    remaining > 0 && remaining <= 1000,
    `the plugin still answers, with ${remaining} ms left`,
  );
  await client.close();
});

test("close() leaves no child processes behind, grandchildren included", async () => {
  const pidFile = join(tempDir("cp-test-"), "grandchild.pid");
  const client = kvClient(fixture("grandchild", { GRANDCHILD_PID_FILE: pidFile }));
  await client.start();
  const grandchild = Number(readFileSync(pidFile, "utf8"));
  assert.ok(isAlive(grandchild), "the grandchild runs while the plugin does");
  await client.close();
  await waitFor("the grandchild to die", () => !isAlive(grandchild), 3_000);
});

test("a plugin exits when its host is killed with SIGKILL", async () => {
  const hostMain = fileURLToPath(new URL("./fixtures/host-then-die.js", import.meta.url));
  const host = spawn(process.execPath, [hostMain], {
    stdio: ["ignore", "pipe", "inherit"],
    // The host is killed before it can remove its socket directory: keep it
    // out of the shared temp dir.
    env: { ...process.env, PLUGIN_UNIX_SOCKET_DIR: tempDir("cp-host-") },
  });
  const pluginPid = await new Promise<number>((resolve, reject) => {
    host.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    host.once("exit", (code) => reject(new Error(`host exited early with ${code}`)));
  });
  assert.ok(isAlive(pluginPid));
  host.kill("SIGKILL");
  await waitFor("the orphaned plugin to exit", () => !isAlive(pluginPid), 5_000);
});

test("SIGTERM makes a plugin finish calls in flight and exit with code 0", async () => {
  const client = kvClient(fixture("kv"));
  await client.start();
  const kv = client.dispense("kv");
  const inFlight = kv.get({ key: "slow:300" });
  await new Promise((r) => setTimeout(r, 100));
  process.kill(client.pid ?? -1, "SIGTERM");
  assert.equal((await inFlight).found, false, "the call finished");
  await waitFor("the plugin to exit", () => client.exit !== undefined);
  assert.deepEqual([client.exit?.code, client.exit?.expected], [0, false]);
  await client.close();
});
