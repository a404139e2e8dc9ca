/**
 * `pack` interrupted mid-write (Ctrl-C, kill) by a real signal to a real CLI
 * process: the hidden temporary archive beside the output is removed, no
 * archive is left, and the process still dies of the signal.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir, waitFor } from "./helpers.js";
import { cli, startCli } from "./oci-helpers.js";

test("pack killed by SIGINT or SIGTERM mid-write leaves neither the temporary file nor an archive", async () => {
  const work = tempDir("cp-packsig-");
  const dir = join(work, "kv");
  mkdirSync(dir);
  writeFileSync(join(dir, "kv.mjs"), "export {};\n");
  // Random bytes do not compress: gzip takes a second or more over 64 MiB.
  const big = openSync(join(dir, "big.bin"), "w");
  for (let i = 0; i < 64; i++) writeSync(big, randomBytes(1 << 20));
  closeSync(big);
  const init = await cli(["init", dir, "--entry", "kv.mjs", "--plugin", "kv=example.kv.v1.KV"]);
  assert.equal(init.code, 0, init.stderr);
  const out = join(work, "out");
  mkdirSync(out);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const { child, exited, stderr } = startCli(["pack", dir, "-o", join(out, "kv.tar.gz")]);
    // Mid-write: the temporary file exists and has bytes in it.
    await waitFor(
      "the temporary archive",
      () =>
        readdirSync(out).some(
          (f) =>
            f.endsWith(".tmp") &&
            (statSync(join(out, f), { throwIfNoEntry: false })?.size ?? 0) > 0,
        ),
      20_000,
    );
    child.kill(signal);
    assert.deepEqual(await exited, [null, signal], stderr());
    assert.deepEqual(readdirSync(out), [], `after ${signal}`);
  }
});
