/**
 * A plugin's output reaches the host's logger: stderr line by line with JSON
 * parsed into records, stdout after the handshake forwarded, and a flood of
 * stderr handled without a deadlock.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { PluginClient } from "../src/index.js";
import type { KV } from "../examples/kv/shared.js";

import { fixture, MemoryLogger, waitFor, kvClient } from "./helpers.js";

async function withPlugin(
  mode: string,
  run: (client: PluginClient<{ kv: typeof KV }>, logger: MemoryLogger) => Promise<void>,
  startTimeoutMs = 10_000,
) {
  const logger = new MemoryLogger();
  const client = kvClient(fixture(mode), { logger, startTimeoutMs });
  await client.start();
  try {
    await run(client, logger);
  } finally {
    await client.close();
  }
}

test("JSON stderr lines become structured records; plain lines are kept as they are", async () => {
  await withPlugin("json-logs", async (_client, logger) => {
    await waitFor("three log lines", () => logger.messages("stderr").includes("a plain line"));
    const hclog = logger.records.find((r) => r.message === "disk almost full");
    assert.ok(hclog);
    assert.equal(hclog.level, "error");
    assert.equal(hclog.source, "stderr");
    assert.deepEqual(hclog.fields, { free_mb: 12 });
    assert.equal(hclog.time.toISOString(), "2026-01-02T03:04:05.000Z");
    assert.match(hclog.plugin, /fixture-plugin\.js json-logs/);
    const pino = logger.records.find((r) => r.message === "pino style");
    assert.equal(pino?.level, "warn");
    assert.deepEqual(pino?.fields, { user: "ada" });
    const plain = logger.records.find((r) => r.message === "a plain line");
    assert.equal(plain?.level, "info");
    assert.deepEqual(plain?.fields, {});
  });
});

test("stdout after the handshake is forwarded to the logger, not lost", async () => {
  await withPlugin("kv", async (client, logger) => {
    const kv = client.dispense("kv");
    for (let i = 0; i < 50; i++) await kv.get({ key: `stdout:line ${i}` });
    await waitFor("50 stdout lines", () => logger.messages("stdout").length === 50);
    assert.deepEqual(
      logger.messages("stdout"),
      Array.from({ length: 50 }, (_, i) => `line ${i}`),
    );
  });
});

test("a plugin that floods stderr (20 MiB before its handshake) does not deadlock", async () => {
  await withPlugin(
    "flood",
    async (client, logger) => {
      const kv = client.dispense("kv");
      await kv.put({ key: "after", value: new Uint8Array([7]) });
      assert.equal((await kv.get({ key: "after" })).found, true);
      const floodLines = () =>
        logger.records.filter((r) => r.source === "stderr" && r.message.startsWith("xxx")).length;
      await waitFor("every flooded line to be read", () => floodLines() >= 20 * 1024, 20_000);
      assert.equal(floodLines(), 20 * 1024);
      assert.ok(
        logger.records.every((r) => r.message.length <= 64 * 1024),
        "no line exceeds the cap",
      );
      await waitFor("the last stderr line", () =>
        logger.records.some((r) => r.message === "flood done"),
      );
      const done = logger.records.find((r) => r.message === "flood done");
      assert.equal(done?.level, "warn");
      assert.deepEqual(done?.fields, { lines: 20480 });
    },
    30_000,
  );
});

test("the plugin's own lifecycle logs arrive as structured records", async () => {
  const logger = new MemoryLogger();
  const client = kvClient(fixture("kv"), { logger });
  await client.start();
  await client.close();
  const stopped = logger.records.find((r) => r.message === "plugin stopped");
  assert.equal(stopped?.level, "info");
  assert.equal(stopped?.fields.reason, "host closed the plugin client");
});

test("an unexpected exit is logged by the host as an error", async () => {
  const logger = new MemoryLogger();
  const client = kvClient(fixture("kv"), { logger });
  await client.start();
  await client
    .dispense("kv")
    .get({ key: "crash" })
    .catch(() => {});
  await waitFor("the crash to be logged", () => logger.records.some((r) => r.source === "host"));
  const record = logger.records.find((r) => r.source === "host");
  assert.equal(record?.level, "error");
  assert.equal(record?.message, "plugin was killed by SIGKILL unexpectedly");
  assert.deepEqual(record?.fields, { code: null, signal: "SIGKILL" });
  await client.close();
});
