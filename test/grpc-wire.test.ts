/**
 * gRPC as grpc-go sees it: what a real gRPC client gets from a plugin for an
 * unknown service or method, and from grpc.health.v1 Watch on an unknown
 * service, and client and bidi streams. The client is a grpc-go program
 * (go/cmd/grpc-probe).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "../src/gen/grpc/health/v1/health_pb.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { startNetworkPlugin } from "./helpers.js";

const run = promisify(execFile);
let probe: string;
let plugin: Awaited<ReturnType<typeof startNetworkPlugin>>;
let address: string;

before(async () => {
  [{ probe }, plugin] = await Promise.all([
    goBinaries({ probe: "./cmd/grpc-probe" }),
    startNetworkPlugin(),
  ]);
  address = new URL(plugin.url).host;
});
after(async () => {
  await plugin.stop();
  removeGoBinaries();
});

async function grpcGoCall(path: string): Promise<{ code: string; message?: string }> {
  const { stdout } = await run(probe, [address, "call", path]);
  return JSON.parse(stdout) as { code: string; message?: string };
}

test("grpc-go: a client stream (PutMany) and a bidi stream (Exchange, each answer read before the next get)", async () => {
  const probeJson = async (...args: string[]): Promise<unknown> =>
    JSON.parse((await run(probe, [address, ...args])).stdout) as unknown;
  assert.deepEqual(await probeJson("putmany", "300"), { code: "OK", count: 300 });
  const values = Array.from({ length: 300 }, (_, i) => i & 0xff);
  assert.deepEqual(await probeJson("exchange", "300"), { code: "OK", found: 300, values });
});

test("grpc-go: an unknown service gets Unimplemented, not a bare 404", async () => {
  assert.deepEqual(await grpcGoCall("/no.such.Service/Get"), {
    code: "Unimplemented",
    message: "unknown service no.such.Service",
  });
});

test("grpc-go: an unknown method of a served service gets Unimplemented", async () => {
  assert.deepEqual(await grpcGoCall("/example.kv.v1.KV/Frobnicate"), {
    code: "Unimplemented",
    message: "unknown method Frobnicate for service example.kv.v1.KV",
  });
});

test("Connect requests keep Connect's 404; gRPC-web over HTTP/1.1 gets grpc-status 12", async () => {
  const post = (contentType: string): Promise<Response> =>
    fetch(`${plugin.url}/no.such.Service/Get`, {
      method: "POST",
      headers: { "content-type": contentType },
      body: contentType.startsWith("application/grpc") ? new Uint8Array(5) : "{}",
    });
  // The Connect protocol's answer for Unimplemented is HTTP 404.
  assert.equal((await post("application/json")).status, 404);
  const web = await post("application/grpc-web+proto");
  assert.equal(web.status, 200);
  assert.equal(web.headers.get("grpc-status"), "12");
  assert.equal(web.headers.get("grpc-message"), "unknown service no.such.Service");
});

test("grpc-go: Health/Watch on an unknown service sends SERVICE_UNKNOWN and stays open", async () => {
  const child = spawn(probe, [address, "watch", "no.such.Service"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  assert.deepEqual(JSON.parse(String(first.value)), { status: "SERVICE_UNKNOWN" });
  // A call made after the first answer completes while the watch is open.
  const health = createClient(Health, createGrpcTransport({ baseUrl: plugin.url }));
  await health.check({ service: "plugin" });
  assert.equal(child.exitCode, null, "the watch is still open");
  // Only the client ends it: grpc-go reports its own cancellation.
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  child.stdin.end();
  const last = await lines.next();
  assert.deepEqual(JSON.parse(String(last.value)), {
    code: "Canceled",
    message: "context canceled",
  });
  assert.equal(await exited, 0);
});
