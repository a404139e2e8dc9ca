/**
 * What a new user sees on a first run: a network-mode plugin that cannot
 * listen says why in one line and exits with EXIT_CANNOT_SERVE; one bound to
 * every interface names that address and warns that it serves plaintext
 * without authentication; a plugin's stack trace reaches the host as errors;
 * and the host's default logger keeps debug lines out of the terminal.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { EXIT_CANNOT_SERVE } from "../src/plugin.js";
import { fixture, kvClient, makeTestPki, MemoryLogger, tempDir, waitFor } from "./helpers.js";

const fixtureMain = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));

/** Runs the fixture KV plugin in network mode; resolves with its exit code and stderr. */
function runNetworkPlugin(
  env: Record<string, string>,
  until?: (stderr: string) => boolean,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fixtureMain, "kv"], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (until?.(stderr) === true) child.kill("SIGTERM");
    });
    child.once("exit", (code) => resolve({ code, stderr }));
  });
}

function logLines(
  stderr: string,
): { "@level": string; "@message": string; [k: string]: unknown }[] {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { "@level": string; "@message": string });
}

describe("network mode that cannot listen", () => {
  test("a malformed CONNECT_PLUGIN_LISTEN: one error line, exit code 2, no stack trace", async () => {
    const { code, stderr } = await runNetworkPlugin({ CONNECT_PLUGIN_LISTEN: "localhost:http" });
    assert.equal(code, EXIT_CANNOT_SERVE);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    const [line] = logLines(stderr);
    assert.equal(line?.["@level"], "error");
    assert.equal(
      line?.["@message"],
      'cannot serve on "localhost:http" (CONNECT_PLUGIN_LISTEN): invalid listen address ' +
        '"localhost:http"; expected HOST:PORT, :PORT or PORT',
    );
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  test("a port out of range is refused the same way", async () => {
    const { code, stderr } = await runNetworkPlugin({ CONNECT_PLUGIN_LISTEN: "127.0.0.1:70000" });
    assert.equal(code, EXIT_CANNOT_SERVE);
    assert.match(logLines(stderr)[0]?.["@message"] ?? "", /the port must be 0 to 65535/);
  });

  test("a port in use (EADDRINUSE): one error line naming the cause, exit code 2", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const { code, stderr } = await runNetworkPlugin({
        CONNECT_PLUGIN_LISTEN: `127.0.0.1:${port}`,
      });
      assert.equal(code, EXIT_CANNOT_SERVE);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
      assert.equal(
        logLines(stderr)[0]?.["@message"],
        `cannot serve on "127.0.0.1:${port}" (CONNECT_PLUGIN_LISTEN): the address is already in use ` +
          "(EADDRINUSE): another process listens on that port; choose another port",
      );
    } finally {
      busy.close();
    }
  });
});

describe("network mode on every interface", () => {
  test("0.0.0.0 logs the address it is bound to and warns loudly about plaintext without auth", async () => {
    const { stderr } = await runNetworkPlugin({ CONNECT_PLUGIN_LISTEN: "0.0.0.0:0" }, (s) =>
      s.includes("WARNING"),
    );
    const lines = logLines(stderr);
    const serving = lines.find((l) => l["@message"] === "plugin serving");
    assert.match(String(serving?.listening), /^http:\/\/0\.0\.0\.0:\d+$/);
    assert.match(String(serving?.url), /^http:\/\/127\.0\.0\.1:\d+$/);
    const warning = lines.find((l) => l["@level"] === "warn");
    assert.match(
      warning?.["@message"] ?? "",
      /^WARNING: serving plaintext HTTP without authentication on 0\.0\.0\.0:\d+, reachable from other machines: anyone who can reach this port can call the plugin\. Configure TLS \(CONNECT_PLUGIN_TLS_CERT_FILE, .*\) and authentication \(requireBearer, requireApiKey\), or listen on 127\.0\.0\.1\.$/,
    );
  });

  test("with TLS configured, or on loopback, there is no warning", async () => {
    const pki = makeTestPki("cp-firstrun-pki-");
    const tls = await runNetworkPlugin(
      {
        CONNECT_PLUGIN_LISTEN: "0.0.0.0:0",
        CONNECT_PLUGIN_TLS_CERT_FILE: join(pki, "server.crt"),
        CONNECT_PLUGIN_TLS_KEY_FILE: join(pki, "server.key"),
      },
      (s) => s.includes("plugin serving"),
    );
    assert.match(tls.stderr, /"listening":"https:\/\/0\.0\.0\.0:\d+"/);
    assert.doesNotMatch(tls.stderr, /WARNING/);
    const loopback = await runNetworkPlugin({ CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" }, (s) =>
      s.includes("plugin serving"),
    );
    assert.doesNotMatch(loopback.stderr, /WARNING|listening/);
  });
});

describe("plugin output at the host", () => {
  test("an error's stack trace printed by a plugin arrives at error level, plain lines stay info", async () => {
    const logger = new MemoryLogger();
    const client = kvClient(fixture("stack-trace"), { logger });
    await client.start();
    try {
      await waitFor("the stack trace", () =>
        logger.records.some((r) => r.message.startsWith("    at ")),
      );
    } finally {
      await client.close();
    }
    const header = logger.records.find((r) =>
      r.message.startsWith("TypeError: the config value is not a number"),
    );
    assert.equal(header?.level, "error");
    const frames = logger.records.filter((r) => /^\s+at /.test(r.message));
    assert.ok(frames.length > 0);
    assert.ok(frames.every((r) => r.level === "error"));
  });

  test("the default logger shows no debug lines (AutoMTLS's) unless CONNECT_PLUGIN_LOG_LEVEL=debug", async () => {
    const host = join(tempDir("cp-firstrun-host-"), "host.mjs");
    const index = new URL("../src/index.js", import.meta.url).href;
    const shared = new URL("../examples/kv/shared.js", import.meta.url).href;
    writeFileSync(
      host,
      `import { PluginClient, subprocess } from ${JSON.stringify(index)};\n` +
        `import { KV, handshake } from ${JSON.stringify(shared)};\n` +
        `const client = new PluginClient({ handshake, plugins: { kv: KV }, source: subprocess(process.execPath, [${JSON.stringify(fixtureMain)}, "kv"]) });\n` +
        "await client.start();\nawait client.close();\n",
    );
    const runHost = (env: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [host], {
          env: { ...process.env, ...env },
          stdio: ["ignore", "ignore", "pipe"],
        });
        let stderr = "";
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        child.once("exit", () => resolve(stderr));
      });
    const quiet = await runHost({});
    assert.doesNotMatch(quiet, /configuring server automatic mTLS|debug:/);
    const verbose = await runHost({ CONNECT_PLUGIN_LOG_LEVEL: "debug" });
    assert.match(verbose, /debug: configuring server automatic mTLS/);
  });
});
