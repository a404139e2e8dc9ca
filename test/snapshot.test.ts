/**
 * `connect-plugin snapshot`: a Node plugin built into a V8 startup snapshot
 * behaves as the same plugin started from its files (handshake, AutoMTLS,
 * calls, errors, metadata, shutdown), reads its launch environment when it
 * starts, not when it was built, and every way a build or a launch can go
 * wrong says why. Real subprocesses: the CLI, node --build-snapshot, and the
 * plugin started from the blob.
 */
import { execFile, spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { buildSnapshot } from "../src/cli/snapshot-build.js";
import { subprocess } from "../src/index.js";
import { goBinaries, removeGoBinaries, runGoHost } from "./go-build.js";
import { MemoryLogger, decode, encode, isAlive, kvClient, tempDir, waitFor } from "./helpers.js";
import { startCli } from "./oci-helpers.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const plugin = fileURLToPath(new URL("./fixtures/snapshot-plugin.js", import.meta.url));
const servePath = fileURLToPath(new URL("../src/plugin.js", import.meta.url));
const dir = tempDir("snapshot-test-");

/** Runs `connect-plugin snapshot ENTRY -o OUT --json`; never rejects. */
async function snapshot(
  entry: string,
  out: string,
  ...more: string[]
): Promise<{ code: number; json: Record<string, unknown> }> {
  const { stdout, code } = await promisify(execFile)(
    process.execPath,
    [cli, "snapshot", entry, "-o", out, "--json", ...more],
    { timeout: 120_000 },
  ).then(
    (r) => ({ stdout: r.stdout, code: 0 }),
    (e: { stdout: string; code: number }) => ({ stdout: e.stdout, code: e.code }),
  );
  return { code, json: JSON.parse(stdout) as Record<string, unknown> };
}

const blob = join(dir, "kv.blob");
const built = snapshot(plugin, blob);

test("a snapshot plugin launched through subprocess() serves over framed + AutoMTLS and shuts down", async () => {
  const { code, json } = await built;
  assert.equal(code, 0, JSON.stringify(json));
  assert.equal(json.blob, blob);
  assert.equal(json.nodeVersion, process.version);
  assert.ok((json.bytes as number) > 1_000_000, `a blob of ${String(json.bytes)} bytes`);

  // Two plugins from one blob at once: each makes its own socket, key and token.
  const loggers = [new MemoryLogger(), new MemoryLogger()];
  const clients = loggers.map((logger) =>
    kvClient(subprocess(process.execPath, ["--snapshot-blob", blob]), { logger }),
  );
  try {
    await Promise.all(clients.map((c) => c.start()));
    const pids = clients.map((c) => Number(/^pid (\d+):/.exec(c.status().where)?.[1]));
    assert.notEqual(pids[0], pids[1]);
    for (const [i, client] of clients.entries()) {
      const kv = client.dispense("kv");
      await kv.put({ key: "k", value: encode(`v${i}`) });
      assert.equal(
        decode((await kv.get({ key: "k" })).value),
        `v${i}`,
        "each plugin its own state",
      );
      assert.equal(decode((await kv.get({ key: "protocol" })).value), "connect-plugin-framed");
      const header = new Headers({ "x-echo": "hello" });
      const echoed: { header?: Headers; trailer?: Headers } = {};
      await kv.get(
        { key: "headers" },
        {
          headers: header,
          onHeader: (h) => (echoed.header = h),
          onTrailer: (t) => (echoed.trailer = t),
        },
      );
      assert.equal(echoed.header?.get("x-echo"), "hello");
      assert.equal(echoed.trailer?.get("x-echo-trailer"), "hello");
      await assert.rejects(kv.get({ key: "fail" }), (e: unknown) => {
        const ce = ConnectError.from(e);
        assert.equal(ce.code, Code.NotFound);
        assert.equal(ce.rawMessage, "no such key: fail");
        assert.equal(ce.metadata.get("x-reason"), "fixture");
        return true;
      });
      const stderr = loggers[i]?.messages("stderr") ?? [];
      assert.ok(stderr.includes("configuring server automatic mTLS"), stderr.join("\n"));
      assert.ok(stderr.includes("snapshot plugin serving"), "serve()'s promise settled");
      assert.ok(
        !stderr.includes("snapshot plugin loading"),
        "code run while the modules loaded ran when the snapshot was built, not at launch",
      );
      const serving = loggers[i]?.records.find((r) => r.message === "snapshot plugin serving");
      assert.equal(serving?.fields.mode, "launched");
      assert.equal(serving?.fields.globalAgentSet, true, "http.globalAgent = agent took");
    }
    await Promise.all(clients.map((c) => c.close()));
    await waitFor("both plugins exit", () => pids.every((pid) => !isAlive(pid)), 10_000);
    for (const logger of loggers) {
      assert.ok(logger.messages("stderr").includes("plugin stopped"), "a graceful shutdown");
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

test("a snapshot plugin passes every protocol conformance check, network mode over HTTP/2 included", async () => {
  const { code } = await built;
  assert.equal(code, 0);
  const run = await promisify(execFile)(
    process.execPath,
    [
      cli,
      "conformance",
      "--json",
      "--cookie",
      "KV_PLUGIN=hello",
      "--",
      process.execPath,
      "--snapshot-blob",
      blob,
    ],
    { timeout: 120_000 },
  ).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code: number; stdout: string }) => e,
  );
  const report = JSON.parse(run.stdout) as {
    passed: boolean;
    checks: Array<{ id: string; status: string; detail: string }>;
  };
  const notPassed = report.checks.filter((c) => c.status !== "pass");
  assert.deepEqual(notPassed, [], "every check passes");
  assert.ok(report.passed && run.code === 0);
  for (const id of ["handshake-line", "auto-mtls", "shutdown", "network-mode"]) {
    assert.ok(
      report.checks.some((c) => c.id === id),
      `the ${id} check ran`,
    );
  }
});

test("go-plugin's own Go hosts drive a snapshot plugin over gRPC, AutoMTLS on and off", async () => {
  const kvPlugin = fileURLToPath(new URL("../examples/goplugin/kv-plugin.js", import.meta.url));
  const kvBlob = join(dir, "goplugin-kv.blob");
  const [{ code, json }, bin] = await Promise.all([
    snapshot(kvPlugin, kvBlob),
    goBinaries({
      // go-plugin's examples/grpc host as published, and ours with AutoMTLS.
      kvHost: "github.com/hashicorp/go-plugin/examples/grpc",
      kvHostMtls: "github.com/connect-plugin/connect-plugin/go/cmd/kv-host-mtls",
    }),
  ]);
  assert.equal(code, 0, JSON.stringify(json));
  // go-plugin runs KV_PLUGIN with `sh -c`.
  const env = { KV_PLUGIN: `"${process.execPath}" --snapshot-blob "${kvBlob}"`, KV_PROTO: "grpc" };
  for (const autoMTLS of [false, true]) {
    const host = autoMTLS ? bin.kvHostMtls : bin.kvHost;
    const cwd = tempDir("snapshot-gohost-");
    const put = await runGoHost(host, ["put", "hello", `world ${autoMTLS}`], env, cwd);
    assert.equal(put.code, 0, put.stdout + put.stderr);
    const get = await runGoHost(host, ["get", "hello"], env, cwd);
    assert.equal(get.code, 0, get.stdout + get.stderr);
    assert.equal(get.stdout, `world ${autoMTLS}\n\nWritten from plugin-ts\n`);
    // The plugin read the host's AutoMTLS certificate at launch, not at build.
    assert.equal(get.stderr.includes("configuring server automatic mTLS"), autoMTLS, get.stderr);
    assert.match(get.stderr, /plugin stopped: .*GRPCController\.Shutdown/);
  }
});
after(removeGoBinaries);

test("a snapshot plugin reads the magic cookie when it starts: run by hand, it says it is a plugin", async () => {
  const { code } = await built;
  assert.equal(code, 0);
  const run = await promisify(execFile)(process.execPath, ["--snapshot-blob", blob], {
    env: { PATH: process.env.PATH ?? "" },
    timeout: 60_000,
  }).then(
    () => ({ code: 0, stderr: "" }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(run.code, 1);
  assert.match(run.stderr, /This binary is a plugin \(the magic cookie KV_PLUGIN is not set\)/);
});

test("a blob built through a launcher (valgrind) starts under it, where a blob built natively is refused (bench:cold --instructions)", async (t) => {
  const valgrind = await promisify(execFile)("valgrind", ["--version"]).then(
    () => true,
    () => false,
  );
  if (!valgrind)
    return t.skip("valgrind is not installed (scripts/setup-test-deps.sh installs it)");
  const underValgrind = join(dir, "valgrind.blob");
  await buildSnapshot(plugin, underValgrind, 600_000, ["valgrind", "--tool=none"]);
  await built;
  const start = (file: string): Promise<{ code: number; stderr: string }> =>
    promisify(execFile)(
      "valgrind",
      ["--tool=none", "-q", process.execPath, "--snapshot-blob", file],
      {
        env: { PATH: process.env.PATH ?? "" },
        timeout: 300_000,
      },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
  // Started: its serve() ran and found no magic cookie.
  const ok = await start(underValgrind);
  assert.equal(ok.code, 1, ok.stderr);
  assert.match(ok.stderr, /This binary is a plugin/);
  // V8 recorded the real CPU's features in the ordinary blob. They differ
  // from valgrind's emulated CPU's only where the real CPU has some valgrind
  // lacks (AVX-512 here): elsewhere the ordinary blob starts too.
  const refused = await start(blob);
  if (refused.code === 1 && /This binary is a plugin/.test(refused.stderr)) {
    t.diagnostic("a natively built blob starts under valgrind on this CPU: nothing refused");
    return;
  }
  assert.equal(refused.code, 14, refused.stderr);
  assert.match(refused.stderr, /different version of V8 or with different V8 configurations/);
});

test("a blob made by another Node version fails to launch with Node's message naming both (fake: its header edited)", async () => {
  const { code } = await built;
  assert.equal(code, 0);
  // The header carries the Node version that built the blob, near its start;
  // edited, it is what another Node version would have written.
  const bytes = readFileSync(blob);
  const at = bytes.indexOf(process.versions.node);
  assert.ok(at >= 0 && at < 64, `the version ${process.versions.node} is in the blob's header`);
  bytes.write("19.0.0".padEnd(process.versions.node.length, "0"), at, "latin1");
  const other = join(dir, "other-node.blob");
  writeFileSync(other, bytes);
  const client = kvClient(subprocess(process.execPath, ["--snapshot-blob", other]));
  try {
    await assert.rejects(client.start(), (e: Error) => {
      assert.match(e.message, /exited with code 14 before completing its handshake/);
      assert.match(
        e.message,
        new RegExp(
          `built with ?Node\\.js version 19\\.0\\.0.* current Node\\.js version is ${process.version.replace(/\./g, "\\.")}`,
        ),
      );
      return true;
    });
  } finally {
    await client.close();
  }
});

test("what connect-plugin snapshot refuses, it says why", async (t) => {
  const cases: Array<{ name: string; source: string; message: RegExp }> = [
    {
      name: "top-level await",
      source: `import { serve } from ${JSON.stringify(servePath)};\nawait serve({});\n`,
      message:
        /cannot bundle .* for a snapshot: .*[Tt]op-level await.*the main file is bundled as CommonJS: write serve\(\.\.\.\) or serve\(\.\.\.\)\.then\(\.\.\.\), not await serve/,
    },
    {
      name: "node:tls used while loading",
      source: `import { createSecureContext } from "node:tls";\ncreateSecureContext();\n`,
      message:
        /could not build a snapshot .*node:tls was used while the snapshot was built \(when a module loaded\); Node 20 cannot hold it in a snapshot/,
    },
    {
      name: "fetch used while loading",
      source: `new Headers();\n`,
      message:
        /could not build a snapshot .*Headers was used while the snapshot was built .*Node 20 cannot hold its fetch implementation \(undici\)/,
    },
    {
      name: "no serve() call",
      source: `console.log("hello");\n`,
      message: /could not build a snapshot .*did not call serve\(\) when it loaded/,
    },
  ];
  // A refused rebuild leaves the blob that was there.
  const kept = join(dir, "kept.blob");
  writeFileSync(kept, "an earlier blob");
  for (const c of cases) {
    await t.test(c.name, async () => {
      const entry = join(dir, `${c.name.replace(/\W+/g, "-")}.mjs`);
      writeFileSync(entry, c.source);
      const { code, json } = await snapshot(entry, kept);
      const error = json.error as { kind: string; message: string; exitCode: number };
      assert.equal(code, 8, JSON.stringify(json));
      assert.equal(error.kind, "incompatible");
      assert.match(error.message, c.message);
      assert.equal(readFileSync(kept, "utf8"), "an earlier blob", "the earlier blob is kept");
    });
  }
  await t.test("a build kept running by a timer started while loading", async () => {
    const entry = join(dir, "timer.mjs");
    writeFileSync(
      entry,
      `import { serve } from ${JSON.stringify(servePath)};\nsetInterval(() => {}, 1000);\nserve({});\n`,
    );
    const { code, json } = await snapshot(entry, kept, "--timeout", "3000");
    assert.equal(code, 8, JSON.stringify(json));
    assert.equal(readFileSync(kept, "utf8"), "an earlier blob", "the earlier blob is kept");
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith("kept.blob.")),
      [],
      "the stopped build's partial blob is removed",
    );
    assert.match(
      (json.error as { message: string }).message,
      /the snapshot build of .*timer\.mjs did not finish in 3000 ms and was stopped: .*something started while the modules loaded \(a timer, a socket, a child process\) keeps it running/,
    );
  });
  await t.test("a bad --timeout", async () => {
    const { code, json } = await snapshot(plugin, join(dir, "refused.blob"), "--timeout", "soon");
    assert.equal(code, 7);
    assert.match(
      (json.error as { message: string }).message,
      /--timeout must be a positive number of milliseconds, not "soon"/,
    );
  });
  await t.test("no directory for the blob", async () => {
    const { code, json } = await snapshot(plugin, join(dir, "missing-dir", "kv.blob"));
    assert.equal(code, 4, JSON.stringify(json));
    assert.match(
      (json.error as { message: string }).message,
      /no such directory for the blob: .*missing-dir/,
    );
  });
  await t.test("no such entry", async () => {
    const { code, json } = await snapshot(join(dir, "missing.js"), join(dir, "refused.blob"));
    assert.equal(code, 4);
    assert.match((json.error as { message: string }).message, /no such file: .*missing\.js/);
  });
});

test("connect-plugin snapshot passes on esbuild's warnings: import.meta is empty in the CommonJS bundle", async () => {
  const entry = join(dir, "import-meta.mjs");
  writeFileSync(
    entry,
    `import { serve } from ${JSON.stringify(servePath)};\n` +
      `const here = import.meta.url;\nserve({ handshake: { protocolVersion: 1, magicCookieKey: "K", magicCookieValue: here ?? "v" }, plugins: {} });\n`,
  );
  const { code, json } = await snapshot(entry, join(dir, "import-meta.blob"));
  assert.equal(code, 0, JSON.stringify(json));
  const warnings = json.warnings as string[];
  assert.ok(
    warnings.some((w) =>
      /import-meta\.mjs:2: "import\.meta" is not available with the "cjs" output format/.test(w),
    ),
    warnings.join("\n"),
  );
});

test("snapshot interrupted (SIGINT) while node builds: the CLI dies of SIGINT and leaves neither its temporary folder nor a partial blob", async () => {
  const tmp = tempDir("snapshot-tmp-");
  const outDir = tempDir("snapshot-out-");
  const entry = join(dir, "interrupted.mjs");
  writeFileSync(
    entry,
    `import { serve } from ${JSON.stringify(servePath)};\nsetInterval(() => {}, 1000);\nserve({});\n`,
  );
  const { child, exited, stderr } = startCli(
    ["snapshot", entry, "-o", join(outDir, "kv.blob"), "--timeout", "60000"],
    { ...process.env, TMPDIR: tmp },
  );
  // node --build-snapshot runs (the CLI's child; esbuild's service is one too).
  await waitFor(
    "node --build-snapshot",
    () =>
      spawnSync("ps", ["-o", "args=", "--ppid", String(child.pid)], {
        encoding: "utf8",
      }).stdout.includes("--build-snapshot"),
    60_000,
  );
  child.kill("SIGINT");
  assert.deepEqual(await exited, [null, "SIGINT"], stderr());
  assert.deepEqual(readdirSync(tmp), [], "the temporary folder");
  assert.deepEqual(readdirSync(outDir), [], "the partial blob");
});
