/**
 * The chaos harness's own parts, so that a harness fault is never taken for
 * a library failure: the proxy's port can be read at any moment of a
 * refuse()/listen() cycle (reading it while the proxy was closing crashed a
 * run and lost its report), and a seed replays the same choices.
 */
import { connect, createServer, type Server } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { startLedgerPlugin } from "../chaos/instance.js";
import { FaultProxy } from "../chaos/proxy.js";
import { seededRandom } from "../chaos/suite.js";

test("the proxy's port stays readable while it refuses connections and after it listens again", async () => {
  const target: Server = createServer((s) => s.end("hi"));
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  const proxy = new FaultProxy({
    host: "127.0.0.1",
    port: (target.address() as { port: number }).port,
  });
  try {
    assert.throws(() => proxy.port, /proxy was never started/);
    await proxy.start();
    const port = proxy.port;
    const refusing = proxy.refuse();
    // The window that crashed the harness: the server is closing, not yet closed.
    assert.equal(proxy.port, port);
    await refusing;
    assert.equal(proxy.port, port);
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => resolve("connected"));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
    });
    assert.equal(refused, "ECONNREFUSED");
    const listening = proxy.listen();
    assert.equal(proxy.port, port);
    await listening;
    // Accepted again, and forwarded: the first bytes from the target arrive.
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(port, "127.0.0.1");
      s.once("data", (c: Buffer) => resolve(c.toString()));
      s.once("error", reject);
    });
    assert.equal(answer, "hi");
  } finally {
    await proxy.close();
    target.close();
  }
});

test("a seed replays the harness's choices; another seed does not", () => {
  const take = (seed: number): number[] => {
    const r = seededRandom(seed);
    return Array.from({ length: 20 }, () => r());
  };
  assert.deepEqual(take(42), take(42));
  assert.notDeepEqual(take(42), take(43));
  for (const x of take(7)) assert.ok(x >= 0 && x < 1);
});

test("a plugin restart under way when the run ends stops at once and leaves no process (it kept the test process alive, respawning a plugin whose ledger folder was gone)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "connect-plugin-chaos-harness-"));
  rmSync(dir, { recursive: true });
  const stop = new AbortController();
  const before = process.getActiveResourcesInfo().filter((r) => r === "ProcessWrap").length;
  // The ledger cannot be opened: every start exits, and is tried again.
  const starting = startLedgerPlugin({
    port: 0,
    ledger: join(dir, "ledger.log"),
    id: "gone",
    signal: stop.signal,
  });
  setTimeout(() => stop.abort(), 300);
  const t0 = Date.now();
  await assert.rejects(starting, (error: Error) => error.name === "AbortError");
  assert.ok(Date.now() - t0 < 5_000, `stopped ${Date.now() - t0} ms after the start`);
  // No child is left running (a killed child's handle goes on its exit).
  for (let i = 0; i < 100; i++) {
    if (process.getActiveResourcesInfo().filter((r) => r === "ProcessWrap").length <= before) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(process.getActiveResourcesInfo().filter((r) => r === "ProcessWrap").length, before);
});
