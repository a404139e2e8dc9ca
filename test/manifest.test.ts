import assert from "node:assert/strict";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { stringify as toYaml } from "yaml";
import { ManagementError } from "../src/manifest/errors.js";
import { parseManifest, validateManifest } from "../src/manifest/manifest.js";
import { hostPlatform } from "../src/manifest/platform.js";
import { canonicalJson } from "../src/security/canonical.js";
import { loadPluginDir, verifyPluginDir } from "../src/security/plugin-dir.js";
import {
  generateKeyPair,
  signManifest,
  trustedKey,
  verifyManifestSignature,
} from "../src/security/signing.js";
import { tempDir } from "./helpers.js";

const good = {
  schemaVersion: 1,
  name: "greeter",
  version: "1.2.3",
  description: "says hello",
  license: "MIT",
  entrypoints: {
    "linux/amd64": { file: "bin/greeter" },
    "darwin/arm64": { file: "bin/greeter-mac" },
  },
  protocolVersions: [1],
  plugins: [{ name: "greeter", service: "greet.v1.Greeter", capabilities: ["hello"] }],
  configSchema: {
    type: "object",
    required: ["greeting"],
    properties: { greeting: { type: "string" } },
  },
  hostVersions: ">=0.1.0",
  files: {
    "bin/greeter": `sha256:${"a".repeat(64)}`,
    "bin/greeter-mac": `sha256:${"b".repeat(64)}`,
  },
};

function invalid(value: unknown, pattern: RegExp): void {
  assert.throws(
    () => validateManifest(value, "manifest test.json"),
    (e: unknown) => {
      assert.ok(e instanceof ManagementError);
      assert.equal(e.kind, "invalid-manifest");
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe("manifest validation names the field", () => {
  test("a valid manifest passes, JSON and YAML alike", () => {
    assert.equal(validateManifest(good).name, "greeter");
    assert.deepEqual(parseManifest(toYaml(good), "plugin.yaml"), good);
  });
  test("a missing field", () => {
    const { license: _license, ...rest } = good;
    invalid(rest, /^invalid manifest test.json: license: is required$/);
  });
  test("a bad version", () => {
    invalid({ ...good, version: "one" }, /version: must match pattern/);
  });
  test("a platform key that is not os/arch", () => {
    invalid(
      { ...good, entrypoints: { linux: { file: "bin/greeter" } } },
      /entrypoints: has the key "linux", which is not os\/arch/,
    );
  });
  test("resource limits: accepted as whole numbers, anything else names the field", () => {
    const limits = { memoryMiB: 256, cpuSeconds: 60, openFiles: 1024 };
    assert.deepEqual(validateManifest({ ...good, limits }).limits, limits);
    invalid({ ...good, limits: { memoryMiB: 8 } }, /limits.memoryMiB: must be >= 16/);
    invalid({ ...good, limits: { cpuSeconds: 1.5 } }, /limits.cpuSeconds: must be integer/);
    invalid(
      { ...good, limits: { memory: 1 } },
      /^invalid manifest test.json: limits.memory: is not a known field$/,
    );
  });
  test("an unknown runtime", () => {
    invalid(
      { ...good, entrypoints: { "linux/amd64": { file: "bin/greeter", runtime: "python" } } },
      /entrypoints.linux\/amd64.runtime: must be one of "exec", "node"/,
    );
  });
  test("nodeOptions: heap and compiler options for runtime node; anything else names the option", () => {
    const entry = (e: Record<string, unknown>) => ({
      ...good,
      entrypoints: { "linux/amd64": { file: "bin/greeter", ...e } },
    });
    const lean = {
      runtime: "node",
      nodeOptions: ["--max-semi-space-size=1", "--single-threaded-gc"],
    };
    assert.deepEqual(validateManifest(entry(lean)).entrypoints["linux/amd64"], {
      file: "bin/greeter",
      ...lean,
    });
    invalid(
      entry({
        runtime: "node",
        nodeOptions: ["--require=/tmp/x.js", "--import", "--max-old-space-size=64"],
      }),
      /^invalid manifest test.json: entrypoints.linux\/amd64.nodeOptions: "--require=\/tmp\/x.js" is not allowed; a manifest may give only --max-semi-space-size, .*--no-opt \(options that load other code are refused\); entrypoints.linux\/amd64.nodeOptions: "--import" is not allowed/,
    );
    invalid(
      entry({
        runtime: "node",
        nodeOptions: ["--max-semi-space-size", "--no-opt=1", "--stack-size=1e3"],
      }),
      /"--max-semi-space-size" must be --max-semi-space-size=N \(a whole number\); .*"--no-opt=1" must be --no-opt alone; .*"--stack-size=1e3" must be --stack-size=N/,
    );
    // A second "=" must not hide behind a valid number: Node would get the
    // whole string and refuse to start (or, in a later Node, read more).
    invalid(
      entry({
        runtime: "node",
        nodeOptions: ["--max-old-space-size=64=--require=/tmp/x.js", "--no-opt=1=2"],
      }),
      /"--max-old-space-size=64=--require=\/tmp\/x.js" must be --max-old-space-size=N \(a whole number\); .*"--no-opt=1=2" must be --no-opt alone/,
    );
    invalid(
      entry({ nodeOptions: ["--max-semi-space-size=1"] }),
      /entrypoints.linux\/amd64.nodeOptions: Node.js options need runtime "node" \(this entrypoint runs the file itself\)/,
    );
    invalid(
      entry({ runtime: "node", nodeOptions: "--no-opt" }),
      /entrypoints.linux\/amd64.nodeOptions: must be array/,
    );
  });
  test("an entrypoint that is not among the files", () => {
    invalid(
      { ...good, entrypoints: { "linux/amd64": { file: "bin/other" } } },
      /entrypoints.linux\/amd64.file: "bin\/other" is not listed in files/,
    );
  });
  test("a file digest that is not sha256", () => {
    invalid(
      { ...good, files: { ...good.files, "bin/greeter": "md5:abc" } },
      /files.bin\/greeter: must match pattern/,
    );
  });
  test("a file path that climbs out of the plugin directory", () => {
    invalid(
      { ...good, files: { ...good.files, "../x": `sha256:${"c".repeat(64)}` } },
      /files.\.\.\/x: climbs out of the plugin directory/,
    );
  });
  test("an unknown field", () => {
    invalid({ ...good, colour: "blue" }, /colour: is not a known field/);
  });
  test("a host range that is not semver", () => {
    invalid({ ...good, hostVersions: "newest" }, /hostVersions: "newest" is not a semver range/);
  });
  test("YAML that does not parse", () => {
    assert.throws(
      () => parseManifest("name: [", "plugin.yaml"),
      /invalid manifest plugin.yaml: not valid YAML/,
    );
  });
});

describe("canonical JSON and ed25519 signatures", () => {
  test("canonical JSON sorts keys at every level and drops whitespace", () => {
    assert.equal(
      canonicalJson({ b: [2, { z: 1, a: "x" }], a: null }),
      '{"a":null,"b":[2,{"a":"x","z":1}]}',
    );
  });
  test("a signature verifies, and fails on any change to the manifest", () => {
    const pair = generateKeyPair();
    const manifest = validateManifest(good);
    const sig = signManifest(manifest, pair.privateKeyPem);
    const trusted = [trustedKey(pair.publicKeyPem, "test.pub")];
    assert.equal(verifyManifestSignature(manifest, sig, trusted).keyId, pair.keyId);
    // Key order does not matter (canonical form); content does.
    const reordered = Object.fromEntries(
      Object.entries(manifest).reverse(),
    ) as unknown as typeof manifest;
    assert.equal(verifyManifestSignature(reordered, sig, trusted).keyId, pair.keyId);
    assert.throws(
      () => verifyManifestSignature({ ...manifest, version: "1.2.4" }, sig, trusted),
      /plugin "greeter" 1.2.4: the signature by key sha256:[a-f0-9]{64} does not match the manifest \(the manifest was changed after signing\)/,
    );
  });
  test("nodeOptions added to a signed manifest fail verification", () => {
    const pair = generateKeyPair();
    const manifest = validateManifest({
      ...good,
      entrypoints: { "linux/amd64": { file: "bin/greeter", runtime: "node" } },
    });
    const sig = signManifest(manifest, pair.privateKeyPem);
    const trusted = [trustedKey(pair.publicKeyPem, "test.pub")];
    assert.equal(verifyManifestSignature(manifest, sig, trusted).keyId, pair.keyId);
    const widened = validateManifest({
      ...good,
      entrypoints: {
        "linux/amd64": { file: "bin/greeter", runtime: "node", nodeOptions: ["--no-opt"] },
      },
    });
    assert.throws(
      () => verifyManifestSignature(widened, sig, trusted),
      /the manifest was changed after signing/,
    );
  });
  test("a key that is not trusted is named", () => {
    const signer = generateKeyPair();
    const other = generateKeyPair();
    const manifest = validateManifest(good);
    assert.throws(
      () =>
        verifyManifestSignature(manifest, signManifest(manifest, signer.privateKeyPem), [
          trustedKey(other.publicKeyPem, "o.pub"),
        ]),
      new RegExp(
        `plugin "greeter" 1.2.3 is signed by key ${signer.keyId}, which is not a trusted key$`,
      ),
    );
  });
});

describe("verifying a plugin directory", () => {
  async function pluginDir() {
    const dir = tempDir("cp-pdir-");
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "bin", "greeter"), "#!/bin/sh\necho hi\n");
    const { createHash } = await import("node:crypto");
    const digest = `sha256:${createHash("sha256").update("#!/bin/sh\necho hi\n").digest("hex")}`;
    const manifest = {
      ...good,
      entrypoints: { [hostPlatform()]: { file: "bin/greeter" } },
      files: { "bin/greeter": digest },
    };
    writeFileSync(join(dir, "plugin.json"), JSON.stringify(manifest));
    const pair = generateKeyPair();
    writeFileSync(
      join(dir, "plugin.sig"),
      JSON.stringify(signManifest(validateManifest(manifest), pair.privateKeyPem)),
    );
    return { dir, digest, trustedKeys: [trustedKey(pair.publicKeyPem, "k.pub")] };
  }

  test("a good plugin verifies", async () => {
    const { dir, trustedKeys } = await pluginDir();
    const v = await verifyPluginDir(await loadPluginDir(dir), { trustedKeys });
    assert.deepEqual(Object.keys(v.files), ["bin/greeter"]);
  });
  test("a changed file is refused with the plugin, the file, and both digests", async () => {
    const { dir, digest, trustedKeys } = await pluginDir();
    writeFileSync(join(dir, "bin", "greeter"), "#!/bin/sh\nrm -rf ~\n");
    await assert.rejects(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      new RegExp(
        `plugin "greeter" 1.2.3: file bin/greeter has digest sha256:[a-f0-9]{64}, but the manifest expects ${digest}`,
      ),
    );
  });
  test("an unsigned plugin fails closed unless explicitly allowed", async () => {
    const { dir, trustedKeys } = await pluginDir();
    const { rmSync } = await import("node:fs");
    rmSync(join(dir, "plugin.sig"));
    await assert.rejects(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      /plugin "greeter" 1.2.3 at .* is unsigned \(no plugin.sig\); refusing to run it/,
    );
    const v = await verifyPluginDir(await loadPluginDir(dir), { trustedKeys, allowUnsigned: true });
    assert.equal(v.signedBy, undefined);
  });
  test("a file the manifest does not list is refused", async () => {
    const { dir, trustedKeys } = await pluginDir();
    writeFileSync(join(dir, "bin", "extra.so"), "x");
    await assert.rejects(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      /file bin\/extra.so in .* is not listed in the manifest/,
    );
  });
  test("a symbolic link is refused", async () => {
    const { dir, trustedKeys } = await pluginDir();
    symlinkSync("/etc/passwd", join(dir, "bin", "passwd"));
    await assert.rejects(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      /bin\/passwd is a symbolic link; plugins ship only regular files/,
    );
  });
  test("the published schema file is the one the validator uses", () => {
    const schema = JSON.parse(
      readFileSync(new URL("../../schema/plugin-manifest.schema.json", import.meta.url), "utf8"),
    ) as { required: string[]; allOf: Array<{ else?: { required: string[] } }> };
    assert.ok(schema.required.includes("hostVersions"));
    // Files and entrypoints: required unless the plugin is remote or a cluster.
    assert.deepEqual(schema.allOf[0]?.else?.required, ["entrypoints", "files"]);
  });
});
