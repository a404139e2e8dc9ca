/**
 * gRPC server reflection on a network-mode plugin, as grpc-go's own
 * reflection client sees it (go/cmd/reflection-probe, built from the module
 * proxy): grpc.reflection.v1 and v1alpha list the services, hand out file
 * descriptors that protodesc builds into a registry with every method, and
 * answer an unknown symbol with NOT_FOUND; `reflection: false` turns it off;
 * the plugin's auth interceptors guard it as they guard every other service.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { requireBearer, serve } from "../src/index.js";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
} from "../src/gen/grpc/reflection/v1/reflection_pb.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { startNetworkPlugin } from "./helpers.js";

const run = promisify(execFile);

interface Probe {
  services?: string[];
  methods?: Record<string, string[]>;
  unknownSymbol?: { code: number; message: string };
  error?: { code: string; message: string };
}

let probe: string;
before(async () => {
  ({ probe } = await goBinaries({ probe: "./cmd/reflection-probe" }));
});
after(() => removeGoBinaries());

async function reflect(url: string, version: "v1" | "v1alpha"): Promise<Probe> {
  const { stdout } = await run(probe, [new URL(url).host, version], { timeout: 60_000 });
  return JSON.parse(stdout) as Probe;
}

describe("gRPC server reflection in network mode", () => {
  let plugin: Awaited<ReturnType<typeof startNetworkPlugin>>;
  before(async () => {
    plugin = await startNetworkPlugin();
  });
  after(() => plugin.stop());

  for (const version of ["v1", "v1alpha"] as const) {
    test(`grpc.reflection.${version}: services, their descriptors and methods; NOT_FOUND for an unknown symbol`, async () => {
      const r = await reflect(plugin.url, version);
      assert.deepEqual(r.services, [
        "connectplugin.v1.HostCallbacks",
        "connectplugin.v1.PluginController",
        "example.kv.v1.KV",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      assert.deepEqual(r.methods?.["example.kv.v1.KV"], [
        "Exchange",
        "Get",
        "Put",
        "PutMany",
        "Watch",
      ]);
      assert.deepEqual(r.methods?.["grpc.health.v1.Health"], ["Check", "Watch"]);
      assert.deepEqual(r.methods?.["connectplugin.v1.PluginController"], [
        "Handshake",
        "Health",
        "Shutdown",
      ]);
      assert.deepEqual(r.unknownSymbol, { code: 5, message: "symbol not found: no.such.Symbol" });
    });
  }
});

test("reflection: false turns it off: grpc-go's client gets Unimplemented", async () => {
  const plugin = await startNetworkPlugin("kv", { FIXTURE_REFLECTION: "off" });
  try {
    for (const version of ["v1", "v1alpha"] as const) {
      const r = await reflect(plugin.url, version);
      assert.deepEqual(r.error, {
        code: "Unimplemented",
        message: `unknown service grpc.reflection.${version}.ServerReflection`,
      });
    }
  } finally {
    await plugin.stop();
  }
});

test("reflection passes the plugin's interceptors: without the bearer token it is refused, with it it answers", async () => {
  const handle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    interceptors: [requireBearer(["reflect-token"])],
  });
  try {
    const transport = createGrpcTransport({ baseUrl: handle.url });
    const list = async (token?: string): Promise<string[]> => {
      async function* ask() {
        yield create(ServerReflectionRequestSchema, {
          messageRequest: { case: "listServices", value: "" },
        });
      }
      const names: string[] = [];
      const responses = createClient(ServerReflection, transport).serverReflectionInfo(ask(), {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
      for await (const res of responses) {
        if (res.messageResponse.case === "listServicesResponse") {
          names.push(...res.messageResponse.value.service.map((s) => s.name));
        }
      }
      return names;
    };
    for (const token of [undefined, "wrong"]) {
      await assert.rejects(list(token), (e: unknown) => {
        assert.equal(ConnectError.from(e).code, Code.Unauthenticated, `token ${token}`);
        return true;
      });
    }
    assert.ok((await list("reflect-token")).includes("example.kv.v1.KV"));
  } finally {
    await handle.shutdown();
  }
});
