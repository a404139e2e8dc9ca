/**
 * serve() and the in-process connector clean up after a failed start, and
 * the plaintext warning names missing authentication only when no real
 * authentication (requireBearer, requireApiKey) is configured.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { test } from "node:test";
import assert from "node:assert/strict";
import { PluginClient, inProcess } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { MemoryLogger } from "./helpers.js";

const index = new URL("../src/index.js", import.meta.url).href;
const definition = new URL("../examples/kv/definition.js", import.meta.url).href;

/** Runs serve() in a fresh Node process with `options` (source text); resolves with its stderr and exit code. */
function runServe(options: string): Promise<{ stderr: string; code: number | null }> {
  const script = `
    import { serve, requireBearer, requireApiKey, rateLimit } from ${JSON.stringify(index)};
    import { kvPlugin } from ${JSON.stringify(definition)};
    try {
      const handle = await serve(kvPlugin(), { exitProcess: false, ...${options} });
      await handle.shutdown();
    } catch (error) {
      process.stderr.write("rejected: " + error.message + "\\n");
    }`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // No kill timer: the process must end by itself, with nothing left running.
  return new Promise((resolve) => child.once("exit", (code) => resolve({ stderr, code })));
}

const warningOf = (stderr: string): string | undefined =>
  stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, string>)
    .find((l) => l["@level"] === "warn")?.["@message"];

test("the plaintext warning says 'without authentication' when the interceptors check nobody", async () => {
  const { stderr, code } = await runServe(
    `{ listen: "0.0.0.0:0", interceptors: [rateLimit({ perSecond: 10 })] }`,
  );
  assert.equal(code, 0);
  assert.match(
    warningOf(stderr) ?? "",
    /^WARNING: serving plaintext HTTP without authentication on /,
  );
});

test("with requireBearer the warning is about credentials crossing the network unencrypted", async () => {
  const { stderr, code } = await runServe(
    `{ listen: "0.0.0.0:0", interceptors: [rateLimit({ perSecond: 10 }), requireBearer(["t"])] }`,
  );
  assert.equal(code, 0);
  assert.match(
    warningOf(stderr) ?? "",
    /^WARNING: serving plaintext HTTP on 0\.0\.0\.0:\d+, reachable from other machines: credentials and data cross the network unencrypted\./,
  );
});

test("a failed listen with exitProcess false rejects, shuts the plugin server down, and leaves nothing running", async () => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  const port = (busy.address() as { port: number }).port;
  try {
    const { stderr, code } = await runServe(`{ listen: "127.0.0.1:${port}" }`);
    assert.equal(code, 0, "the process ended on its own");
    assert.match(stderr, /"@message":"plugin shutting down"[^\n]*"reason":"could not listen"/);
    assert.match(
      stderr,
      new RegExp(
        `rejected: cannot serve on "127.0.0.1:${port}" \\(listen\\): the address is already in use`,
      ),
    );
  } finally {
    busy.close();
  }
});

test("in process: a start that fails shuts the plugin's server down", async () => {
  const logger = new MemoryLogger();
  const client = new PluginClient({
    handshake,
    plugins: { kv: KV, absent: KV },
    source: inProcess(kvPlugin()),
    logger,
  });
  await assert.rejects(client.start(), /absent/);
  const stopped = logger.records.find((r) => r.message === "plugin shutting down");
  assert.equal(stopped?.source, "in-process");
  assert.deepEqual(stopped?.fields.reason, "the host could not start the plugin");
});
