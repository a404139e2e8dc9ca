/**
 * The benchmark's "connect-go plugin (Go), remote, HTTP/2" contender
 * (bench/connect-go.ts, go/bench/connectgo) works end to end: built as the
 * bench builds it, each scenario's call answers what the other contenders
 * answer, through the bench's own host process too; and a Go build or a
 * plugin start that fails says why. No timings are asserted.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import * as http2 from "node:http2";
import { after, before, test } from "node:test";
import { ConnectError, Code } from "@connectrpc/connect";
import { HostProcess } from "../bench/contenders.js";
import { openConnectGoPlugin } from "../bench/connect-go.js";
import { buildGoContenders, goBuild, runGo } from "../bench/go-build.js";

const MiB = 1024 * 1024;
let go: Awaited<ReturnType<typeof buildGoContenders>>;
const temp = mkdtempSync(join(tmpdir(), "cp-bench-connectgo-"));
before(
  async () => {
    go = await buildGoContenders();
  },
  { timeout: 600_000 },
);
after(() => {
  rmSync(temp, { recursive: true, force: true });
  if (go !== undefined) rmSync(go.dir, { recursive: true, force: true });
});

test("the connect-go bench plugin answers each scenario's call like the other contenders", async () => {
  const plugin = await openConnectGoPlugin(go.connectGo);
  try {
    assert.match(plugin.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      plugin.client.availablePlugins.map((p) => [p.name, p.service]),
      [["bench", "bench.v1.BenchService"]],
    );
    const bench = plugin.client.dispense("bench");
    // Scenarios 1 and 2: a 16-byte echo.
    const small = new Uint8Array(16).fill(7);
    assert.deepEqual(new Uint8Array((await bench.echo({ value: small })).value), small);
    // Scenario 3: a 1 MiB echo, every byte back in place.
    const big = new Uint8Array(MiB).map((_, i) => (i * 31) & 0xff);
    assert.deepEqual(new Uint8Array((await bench.echo({ value: big })).value), big);
    // Scenario 4: a server stream of N 16-byte messages.
    const got: Uint8Array[] = [];
    for await (const m of bench.stream({ value: 1_000n })) got.push(m.value);
    assert.equal(got.length, 1_000);
    assert.ok(got.every((v) => v.length === 16 && v.every((b) => b === 7)));
    let none = 0;
    for await (const _ of bench.stream({ value: 0n })) none++;
    assert.equal(none, 0);
    // A negative count is the caller's mistake, and says so.
    await assert.rejects(
      async () => {
        for await (const _ of bench.stream({ value: -1n }));
      },
      (err: unknown) =>
        err instanceof ConnectError &&
        err.code === Code.InvalidArgument &&
        /must not be negative/.test(err.message),
    );
  } finally {
    await plugin.close();
  }
});

test("the bench's host process runs every scenario against the Go plugin and sees its process", async () => {
  const name = "connect-go plugin (Go), remote, HTTP/2";
  const host = await HostProcess.node(name, "remote-connect-go", [go.connectGo]);
  try {
    const unary = await host.unary(5, 16);
    assert.equal(unary.length, 5);
    assert.ok(unary.every((us) => us > 0));
    assert.ok((await host.concurrent(100, 64)) > 0);
    assert.equal((await host.unary(2, MiB)).length, 2);
    // The host checks the count itself (fromOps throws on a short stream).
    assert.ok((await host.stream(2_000)) > 0);
    // Scenarios 8 and 9 read the serving process: the Go plugin, not Node.
    const pid = host.serverPid();
    assert.ok(pid !== undefined, "the host has the plugin as its child");
    assert.equal(basename(readlinkSync(`/proc/${pid}/exe`)), "connectgo");
    assert.match(host.cores(64), /plugin Go: goroutines/);
  } finally {
    await host.close();
  }
});

/** The content-encoding of the plugin's answer to a Connect Echo of `size` bytes, asked with gzip accepted. */
async function echoEncoding(url: string, size: number): Promise<string> {
  const session = http2.connect(url);
  try {
    // google.protobuf.BytesValue: field 1, length-delimited (size < 2^14: a two-byte varint).
    const body = Buffer.concat([
      Buffer.from([0x0a, (size & 0x7f) | 0x80, size >> 7]),
      Buffer.alloc(size, 7),
    ]);
    const req = session.request({
      ":method": "POST",
      ":path": "/bench.v1.BenchService/Echo",
      "content-type": "application/proto",
      "connect-protocol-version": "1",
      "accept-encoding": "gzip",
    });
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
      req.end(body);
    });
    req.resume();
    assert.equal(headers[":status"], 200);
    return String(headers["content-encoding"] ?? "identity");
  } finally {
    session.close();
  }
}

test("responses under 1 KiB go uncompressed, as the Node plugin's; BENCH_COMPRESS_MIN_BYTES=0 is connect-go's default", async () => {
  const plugin = await openConnectGoPlugin(go.connectGo);
  const gzipAll = await openConnectGoPlugin(go.connectGo, {
    env: { BENCH_COMPRESS_MIN_BYTES: "0" },
  });
  try {
    assert.equal(await echoEncoding(plugin.url, 16), "identity");
    assert.equal(await echoEncoding(plugin.url, 4096), "gzip");
    assert.equal(await echoEncoding(gzipAll.url, 16), "gzip");
    // The host's client takes either, as the bench's calls do.
    const small = new Uint8Array(16).fill(7);
    const res = await gzipAll.client.dispense("bench").echo({ value: small });
    assert.deepEqual(new Uint8Array(res.value), small);
  } finally {
    await Promise.all([plugin.close(), gzipAll.close()]);
  }
  await assert.rejects(
    openConnectGoPlugin(go.connectGo, { env: { BENCH_COMPRESS_MIN_BYTES: "lots" } }),
    /exited \(2\):.*BENCH_COMPRESS_MIN_BYTES must be a whole number of bytes, 0 or more, got \\"lots\\"/,
  );
});

test("a missing or failing plugin executable is a clear error, never a hang", async () => {
  await assert.rejects(openConnectGoPlugin(""), /connect-go bench plugin's executable is missing/);
  await assert.rejects(
    openConnectGoPlugin(join(temp, "no-such-plugin")),
    /connect-go bench plugin .*no-such-plugin could not start: spawn .* ENOENT/,
  );
  await assert.rejects(
    openConnectGoPlugin("/bin/false"),
    /connect-go bench plugin \/bin\/false exited \(1\)/,
  );
  const silent = join(temp, "silent-plugin");
  writeFileSync(silent, "#!/bin/sh\nexec sleep 30\n");
  chmodSync(silent, 0o755);
  await assert.rejects(
    openConnectGoPlugin(silent, { startTimeoutMs: 300 }),
    /connect-go bench plugin .*silent-plugin logged no address in 300 ms/,
  );
});

test("a Go build that fails names the command and carries Go's message", async () => {
  const module = join(temp, "broken");
  rmSync(module, { recursive: true, force: true });
  mkdirSync(module);
  writeFileSync(join(module, "go.mod"), "module example.com/broken\n\ngo 1.22\n");
  writeFileSync(join(module, "main.go"), "package main\n\nfunc main() { undefinedCall() }\n");
  await assert.rejects(
    goBuild(temp, ".", "broken-bin", module),
    /go build -o .*broken-bin \. failed in .*broken: .*undefined: undefinedCall/s,
  );
  await assert.rejects(
    runGo(["version"], module, { ...process.env, PATH: join(temp, "empty") }),
    /go version failed in .*: the Go toolchain \(go\) is not on PATH/,
  );
});
