/**
 * `connect-plugin status --from URL` run as a real CLI process against a
 * host (this test's process) that manages a signed subprocess plugin and a
 * cluster with one instance held out: every plugin with where it runs, its
 * generation, health and restarts, and the cluster's instances, as text and
 * as --json; and the messages for a URL that is not a status page.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { KV, handshake } from "../examples/kv/shared.js";
import { cluster } from "../src/host/sources.js";
import { PluginManager } from "../src/manager/manager.js";
import { statusPage } from "../src/status/status-page.js";
import type { StatusSnapshot } from "../src/status/snapshot.js";
import { freePort } from "../chaos/suite.js";
import { encode, waitFor } from "./helpers.js";
import { cli, keysOnDisk, kvPluginDir, signAndInstall } from "./oci-helpers.js";
import { startLedger, stopAll, type LedgerInstance } from "./cluster-helpers.js";

const ledgers: LedgerInstance[] = [];
after(() => stopAll(ledgers));

test("status --from shows every plugin a running host manages, with generation, health, restarts and cluster instances", async () => {
  const keys = keysOnDisk();
  const dir = await signAndInstall(await kvPluginDir(), keys);
  const v1 = await startLedger("st-v1");
  const v3 = await startLedger("st-v3", { LEDGER_PROTOCOL_VERSIONS: "3" });
  ledgers.push(v1, v3);
  const manager = new PluginManager({
    directories: [dir],
    trustedKeysDir: keys.trustedDir,
    restart: { maxRestarts: 3, windowMs: 60_000, initialBackoffMs: 10 },
  });
  await manager.scan();
  manager.registerEndpoint("pool", { source: cluster([v1.url, v3.url]) });
  const server = createServer(statusPage(manager));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const kv = manager.open("kv", { handshake, plugins: { kv: KV } });
    await kv.dispense("kv").put({ key: "a", value: encode("1") });
    // A crash, so that generation and restarts say something.
    process.kill(kv.pid!, "SIGKILL");
    await waitFor("the restart", () => kv.restarts === 1 && kv.state === "running", 10_000);
    const pool = manager.open("pool", { handshake, plugins: { kv: KV } });
    await pool.dispense("kv").put({ key: "b" });

    const text = await cli(["status", "--from", url]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split("\n");
    assert.match(
      lines[0] ?? "",
      new RegExp(
        `^kv\\tsubprocess\\trunning\\tgeneration 2\\thealth serving\\trestarts 1\\tin flight 0\\tpid ${kv.pid}: `,
      ),
    );
    assert.match(
      lines[1] ?? "",
      /^pool\tcluster\trunning\tgeneration 1\thealth serving\trestarts 0\tin flight 0\tcluster of static list/,
    );
    assert.deepEqual(
      lines.slice(2).sort(),
      [
        `  127.0.0.1:${v1.port}\t${v1.url}\tserving v1\thealthy\tcircuit closed\tin flight 0`,
        `  127.0.0.1:${v3.port}\t${v3.url}\theld-out\thealthy\tcircuit closed\tin flight 0\t` +
          "protocol version mismatch: the instance speaks [3], this host speaks [1]",
      ].sort(),
    );

    const json = await cli(["--json", "status", "--from", url]);
    assert.equal(json.code, 0, json.stderr);
    const snapshot = JSON.parse(json.stdout) as StatusSnapshot & { from: string };
    assert.equal(snapshot.from, url);
    assert.deepEqual(
      snapshot.plugins.map((p) => [
        p.name,
        p.generation,
        p.restarts,
        p.health,
        // Instances are listed by address, and the ports are random.
        p.endpoints.map((e) => e.admission).sort(),
      ]),
      [
        ["kv", 2, 1, "serving", []],
        ["pool", 1, 0, "serving", ["held-out", "serving"]],
      ],
    );
  } finally {
    server.closeAllConnections();
    server.close();
    await manager.close();
  }
});

test("status --from a URL that is not a status page, or that nothing answers, says so (exit 5, network)", async () => {
  const plugin = await startLedger("st-plain");
  ledgers.push(plugin);
  const notPage = await cli(["status", "--from", plugin.url]);
  assert.equal(notPage.code, 5, notPage.stderr);
  assert.match(
    notPage.stderr,
    new RegExp(`${plugin.url.replace(/\./g, "\\.")}/status\\.json answered 404`),
  );
  const port = await freePort();
  const nobody = await cli(["status", "--from", `http://127.0.0.1:${port}/`]);
  assert.equal(nobody.code, 5, nobody.stderr);
  assert.match(
    nobody.stderr,
    new RegExp(
      `cannot reach the status page at http://127\\.0\\.0\\.1:${port}/status\\.json: .*ECONNREFUSED`,
    ),
  );
});

test("status --from a page that answers JSON but not a status snapshot: exit 5 naming it", async () => {
  const other = createServer((_req, res) => res.end('{"hello":"world"}'));
  await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}/`;
  try {
    const r = await cli(["status", "--from", url]);
    assert.deepEqual(
      [r.code, r.stderr],
      [
        5,
        `connect-plugin: ${url}status.json is not a connect-plugin status page (its answer is not a status snapshot)\n`,
      ],
    );
  } finally {
    other.close();
  }
});
