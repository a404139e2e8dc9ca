/**
 * Known answers for the decisions that guard security and correctness, each
 * written so that a plausible slip in the code (a dropped case, a weakened
 * check, an emptied constant) fails it: the idempotency levels that allow a
 * retry, the loopback rule for plaintext, and the exact bytes a manifest
 * signature covers, checked against a signature made here by hand.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, sign } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { PluginController } from "../src/gen/connectplugin/v1/controller_pb.js";
import { RetryPolicy } from "../src/resilience/retry.js";
import { remote } from "../src/host/sources.js";
import { canonicalJson, signedBytes } from "../src/security/canonical.js";
import { keyIdOf, verifyManifestSignature, trustedKey } from "../src/security/signing.js";
import type { PluginManifest } from "../src/manifest/types.js";
import { KV } from "../examples/kv/shared.js";

test("retry: NO_SIDE_EFFECTS and IDEMPOTENT methods are idempotent, unmarked ones are not", () => {
  const policy = new RetryPolicy();
  // Shutdown is `option idempotency_level = IDEMPOTENT` in controller.proto.
  assert.equal(policy.isIdempotent(PluginController.method.shutdown), true, "IDEMPOTENT");
  assert.equal(policy.isIdempotent(PluginController.method.health), true, "NO_SIDE_EFFECTS");
  assert.equal(policy.isIdempotent(KV.method.get), true, "NO_SIDE_EFFECTS");
  for (const m of [KV.method.put, KV.method.putMany, KV.method.watch, KV.method.exchange])
    assert.equal(policy.isIdempotent(m), false, m.name);
  // Either spelling of the name; only the exact method.
  for (const name of ["example.kv.v1.KV/Put", "example.kv.v1.KV.Put"]) {
    const p = new RetryPolicy({ idempotentMethods: [name] });
    assert.equal(p.isIdempotent(KV.method.put), true, name);
    assert.equal(p.isIdempotent(KV.method.putMany), false, name);
  }
});

test("retry: default retryable codes are exactly Unavailable, DeadlineExceeded and Aborted", () => {
  const policy = new RetryPolicy();
  const retryable = Object.values(Code)
    .filter((c): c is Code => typeof c === "number")
    .filter((c) => policy.isRetryableCode(c));
  assert.deepEqual(
    retryable.sort((a, b) => a - b),
    [Code.Aborted, Code.DeadlineExceeded, Code.Unavailable].sort((a, b) => a - b),
  );
  const custom = new RetryPolicy({ retryableCodes: [Code.ResourceExhausted] });
  assert.equal(custom.isRetryableCode(Code.ResourceExhausted), true);
  assert.equal(custom.isRetryableCode(Code.Unavailable), false);
  assert.equal(new RetryPolicy().maxAttempts, 3);
  assert.equal(new RetryPolicy({ maxAttempts: 0 }).maxAttempts, 1, "at least the first attempt");
});

test("retry: backoff doubles from the base and stops at the cap (Math.random pinned)", () => {
  const random = Math.random;
  try {
    Math.random = () => 0.999999;
    const policy = new RetryPolicy({ baseDelayMs: 10, maxDelayMs: 70 });
    const caps = [1, 2, 3, 4, 5].map((a) => Math.round(policy.backoffMs(a)));
    assert.deepEqual(caps, [10, 20, 40, 70, 70]);
    Math.random = () => 0;
    assert.equal(policy.backoffMs(3), 0, "full jitter starts at zero");
  } finally {
    Math.random = random;
  }
});

test("loopback: only localhost, 127.0.0.0/8 and ::1 may take plaintext http://", () => {
  for (const url of [
    "http://localhost:1/",
    "http://LOCALHOST:1/",
    "http://127.0.0.1:1/",
    "http://127.255.3.4:1/",
    "http://[::1]:1/",
  ])
    assert.doesNotThrow(() => remote(url), url);
  // Names that merely start like loopback addresses are somebody else's hosts.
  for (const url of [
    "http://127.example.com/",
    "http://127.0.0.1.example.com/",
    "http://127.evil/",
    "http://localhost.example.com/",
    "http://sub.localhost/",
    "http://10.0.0.1/",
    "http://[::2]/",
    "http://[::ffff:8.8.8.8]/",
  ]) {
    assert.throws(
      () => remote(url),
      (e: unknown) =>
        e instanceof TypeError &&
        /^refusing plaintext http:\/\/ to non-loopback host /.test(e.message),
      url,
    );
    assert.doesNotThrow(() => remote(url, { allowPlaintext: true }), `${url} opted in`);
  }
});

/** A fixed ed25519 key (RFC 8032 test 1's secret), so that signatures are known answers. */
const seed = Buffer.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "hex");
const privateKey = createPrivateKey({
  key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
  format: "der",
  type: "pkcs8",
});
const publicKey = createPublicKey(privateKey);

const manifest = {
  schemaVersion: 1,
  name: "kv",
  version: "1.0.0",
  description: "é ✓",
  license: "MIT",
  entrypoints: { "linux/amd64": { file: "kv", args: ["--x", "1"] } },
  protocolVersions: [1, 2],
  plugins: [{ service: "example.kv.v1.KV", name: "kv" }],
  hostVersions: ">=0.1.0",
  files: { kv: `sha256:${"a".repeat(64)}` },
} satisfies PluginManifest;

/** Written out by hand: keys sorted at every level, no whitespace, the domain tag first. */
const expectedSigned =
  "connect-plugin-manifest-v1\n" +
  '{"description":"é ✓","entrypoints":{"linux/amd64":{"args":["--x","1"],"file":"kv"}},' +
  `"files":{"kv":"sha256:${"a".repeat(64)}"},"hostVersions":">=0.1.0","license":"MIT",` +
  '"name":"kv","plugins":[{"name":"kv","service":"example.kv.v1.KV"}],' +
  '"protocolVersions":[1,2],"schemaVersion":1,"version":"1.0.0"}';

test("canonical JSON: the signed bytes are the domain tag and the sorted manifest, byte for byte", () => {
  assert.equal(signedBytes(manifest).toString("utf8"), expectedSigned);
  assert.deepEqual(signedBytes(manifest), Buffer.from(expectedSigned, "utf8"));
  assert.equal(
    canonicalJson({ b: 1, a: undefined, A: [null, "x\n"] }),
    '{"A":[null,"x\\n"],"b":1}',
  );
  assert.equal(canonicalJson({ é: 1, z: 2, "": 3 }), '{"":3,"z":2,"é":1}');
  assert.throws(() => canonicalJson({ n: Number.NaN }), /no representation for NaN or Infinity/);
  assert.throws(() => canonicalJson([Infinity]), /no representation for NaN or Infinity/);
});

test("signatures: one made by hand over the tagged bytes verifies; one without the tag does not", () => {
  const trusted = [
    trustedKey(publicKey.export({ type: "spki", format: "pem" }).toString(), "test"),
  ];
  const keyId = keyIdOf(publicKey);
  const good = sign(null, Buffer.from(expectedSigned, "utf8"), privateKey).toString("base64");
  assert.equal(
    verifyManifestSignature(manifest, { algorithm: "ed25519", keyId, signature: good }, trusted)
      .keyId,
    keyId,
  );
  // The same manifest signed without the domain tag: a signature over
  // something else, which must never be accepted as a manifest signature.
  const untagged = sign(
    null,
    Buffer.from(expectedSigned.slice("connect-plugin-manifest-v1\n".length), "utf8"),
    privateKey,
  ).toString("base64");
  assert.throws(
    () =>
      verifyManifestSignature(
        manifest,
        { algorithm: "ed25519", keyId, signature: untagged },
        trusted,
      ),
    (e: unknown) =>
      e instanceof Error &&
      e.message ===
        `plugin "kv" 1.0.0: the signature by key ${keyId} does not match the manifest ` +
          `(the manifest was changed after signing)`,
  );
  assert.throws(
    () =>
      verifyManifestSignature(
        { ...manifest, version: "1.0.1" },
        { algorithm: "ed25519", keyId, signature: good },
        trusted,
      ),
    /does not match the manifest/,
  );
});
