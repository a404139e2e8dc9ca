/**
 * bench/cold-floor.ts, the floor `npm run bench:cold` times beside the
 * plugin: it starts and echoes, and a start that gets no echo (the server
 * refuses the client's certificate) fails instead of hanging the bench.
 * No timings are asserted.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { startFloor } from "../bench/cold-floor.js";
import { generateAutoMtlsCertificate } from "../src/security/auto-mtls.js";

test("the floor server starts, echoes over mutual TLS and exits when closed", async () => {
  const floor = await startFloor();
  assert.ok(floor.wall > 0 && floor.cpu > 0);
  await floor.close();
  assert.throws(() => readFileSync(`/proc/${floor.pid}/stat`));
});

test("a floor start whose server refuses the client's certificate fails, not hangs", async () => {
  // env(1) before node pins another certificate than the one the client presents.
  const stranger = generateAutoMtlsCertificate("P-256").certPem;
  const before = new Set(readdirSync(tmpdir()));
  const outcome = await Promise.race([
    startFloor(["env", `PLUGIN_CLIENT_CERT=${stranger}`]).then(
      async (floor) => {
        await floor.close();
        return "started";
      },
      (error: Error) => `failed: ${error.message}`,
    ),
    new Promise<string>((resolve) => setTimeout(resolve, 20_000, "hung").unref()),
  ]);
  assert.match(outcome, /^failed: /);
  // Its server was killed: no socket file of it is left.
  const left = readdirSync(tmpdir()).filter(
    (f) => f.startsWith("cold-floor-") && f.endsWith(".sock"),
  );
  assert.deepEqual(
    left.filter((f) => !before.has(f)),
    [],
  );
});
