/** judgeHandshake and clusterHandshake: which instance may serve a host, and the cluster's answer. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { HandshakeResponseSchema } from "../../../src/gen/connectplugin/v1/controller_pb.js";
import {
  clusterHandshake,
  judgeHandshake,
  type Admission,
  type InstanceNegotiation,
} from "../../../src/resilience/negotiation.js";

const host: InstanceNegotiation = {
  versions: [1, 2],
  plugins: new Map<number, Record<string, string>>([
    [1, { kv: "example.kv.v1.KV" }],
    [2, { kv: "example.kv.v1.KV", admin: "example.kv.v2.Admin" }],
  ]),
};

const answer = (
  version: number,
  plugins: Array<[string, string]>,
  supportedVersions: number[] = [version],
): ReturnType<typeof create<typeof HandshakeResponseSchema>> =>
  create(HandshakeResponseSchema, {
    protocolVersion: version,
    supportedVersions,
    availablePlugins: plugins.map(([name, service]) => ({ name, service, version: "1.0.0" })),
  });

test("an instance at a host version with every plugin serves, and serves those services", () => {
  const a = judgeHandshake(
    answer(2, [
      ["kv", "example.kv.v1.KV"],
      ["admin", "example.kv.v2.Admin"],
    ]),
    host,
  );
  assert.equal(a.state, "serving");
  assert.ok(a.state === "serving" && a.version === 2);
  assert.deepEqual(a.state === "serving" && [...a.services].sort(), [
    "example.kv.v1.KV",
    "example.kv.v2.Admin",
  ]);
});

test("an empty service name in the answer matches, as PluginClient allows", () => {
  assert.equal(judgeHandshake(answer(1, [["kv", ""]]), host).state, "serving");
});

test("version 0 (no shared version) is held out naming both sides", () => {
  assert.deepEqual(judgeHandshake(answer(0, [], [3, 4]), host), {
    state: "held-out",
    reason: "protocol version mismatch: the instance speaks [3, 4], this host speaks [1, 2]",
    supportedVersions: [3, 4],
  });
});

test("with only an instance that lacks a plugin, the cluster answers as it did, so the client names the plugin", () => {
  const held = judgeHandshake(answer(2, [["kv", "example.kv.v1.KV"]]), host);
  const res = clusterHandshake([held]);
  assert.equal(res?.protocolVersion, 2);
  assert.deepEqual(
    res?.availablePlugins.map((p) => p.name),
    ["kv"],
  );
});

test("a missing plugin or another service at the agreed version is held out with each reason", () => {
  const a = judgeHandshake(answer(2, [["kv", "example.kv.v9.KV"]]), host);
  assert.equal(a.state, "held-out");
  assert.equal(
    a.state === "held-out" && a.reason,
    'at protocol version 2: "kv" is served as example.kv.v9.KV, the host expects example.kv.v1.KV; "admin" is not provided',
  );
});

test("the cluster answers with the highest version served, the plugins at it, and every version seen", () => {
  const v1 = judgeHandshake(answer(1, [["kv", "example.kv.v1.KV"]], [1]), host);
  const v2 = judgeHandshake(
    answer(
      2,
      [
        ["kv", "example.kv.v1.KV"],
        ["admin", "example.kv.v2.Admin"],
      ],
      [1, 2],
    ),
    host,
  );
  const res = clusterHandshake([v1, v2, { state: "negotiating", reason: "x" }]);
  assert.equal(res?.protocolVersion, 2);
  assert.deepEqual(res?.availablePlugins.map((p) => p.name).sort(), ["admin", "kv"]);
  assert.deepEqual([...(res?.supportedVersions ?? [])].sort(), [1, 2]);
});

test("with none serving: version 0 when some are held out, no answer when none answered", () => {
  const held: Admission = { state: "held-out", reason: "r", supportedVersions: [3] };
  assert.equal(clusterHandshake([held])?.protocolVersion, 0);
  assert.deepEqual(clusterHandshake([held])?.supportedVersions, [3]);
  assert.equal(clusterHandshake([{ state: "negotiating", reason: "r" }]), undefined);
  assert.equal(clusterHandshake([]), undefined);
});
