/**
 * Plugin directories on disk, as the host finds them before anything runs:
 * loading the manifest and plugin.sig, then the signature, the listed files
 * and their digests. Real files in a temporary directory; every refusal is
 * checked word for word.
 */
import assert from "node:assert/strict";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { stringify as toYaml } from "yaml";
import { sha256 } from "../../../src/manifest/digest.js";
import { computeFiles } from "../../../src/manifest/files.js";
import { ManagementError, type ManagementErrorKind } from "../../../src/manifest/errors.js";
import { validateManifest } from "../../../src/manifest/manifest.js";
import { hostPlatform } from "../../../src/manifest/platform.js";
import { loadPluginDir, verifyPluginDir } from "../../../src/security/plugin-dir.js";
import { generateKeyPair, signManifest, trustedKey } from "../../../src/security/signing.js";
import { tempDir } from "../../helpers.js";

const PROGRAM = "#!/bin/sh\necho hi\n";
const HERE = hostPlatform();
/** A platform that is not this host's. */
const ELSEWHERE = HERE === "darwin/arm64" ? "linux/amd64" : "darwin/arm64";

const manifest = {
  schemaVersion: 1,
  name: "greeter",
  version: "1.2.3",
  description: "says hello",
  license: "MIT",
  entrypoints: { [HERE]: { file: "bin/greeter" } },
  protocolVersions: [1],
  plugins: [{ name: "greeter", service: "greet.v1.Greeter" }],
  hostVersions: ">=0.1.0",
  files: { "bin/greeter": sha256(PROGRAM) },
};

const signer = generateKeyPair();
const signerKey = trustedKey(signer.publicKeyPem, "k.pub");
const trustedKeys = [signerKey];

/**
 * A signed plugin directory: bin/greeter, plugin.json (or `manifestFile`)
 * and plugin.sig by `signer`, for `m`.
 */
function pluginDir(m: Record<string, unknown> = manifest, manifestFile = "plugin.json"): string {
  const dir = tempDir("cp-pdir-");
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "bin", "greeter"), PROGRAM);
  writeFileSync(
    join(dir, manifestFile),
    manifestFile.endsWith(".json") ? JSON.stringify(m) : toYaml(m),
  );
  writeFileSync(
    join(dir, "plugin.sig"),
    JSON.stringify(signManifest(validateManifest(m), signer.privateKeyPem)),
  );
  return dir;
}

/** `promise` must reject with a ManagementError of this kind and exactly this message. */
async function rejectsWith(
  promise: Promise<unknown>,
  kind: ManagementErrorKind,
  message: string,
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ManagementError, String(e));
    assert.equal(e.kind, kind);
    assert.equal(e.message, message);
    return true;
  });
}

describe("loading a plugin directory", () => {
  test("reads the manifest and the signature", async () => {
    const dir = pluginDir();
    const loaded = await loadPluginDir(dir);
    assert.equal(loaded.dir, dir);
    assert.equal(loaded.manifestFile, "plugin.json");
    assert.deepEqual(loaded.manifest, manifest);
    assert.equal(loaded.signature?.keyId, signer.keyId);
  });

  test("a directory without a manifest is not a plugin directory", async () => {
    const dir = tempDir("cp-pdir-");
    await rejectsWith(
      loadPluginDir(dir),
      "not-found",
      `${dir} is not a plugin directory: it has no plugin.json or plugin.yaml or plugin.yml`,
    );
  });

  test("an invalid manifest is named by its path", async () => {
    const dir = pluginDir();
    writeFileSync(
      join(dir, "plugin.json"),
      JSON.stringify({ ...manifest, hostVersions: "newest" }),
    );
    await rejectsWith(
      loadPluginDir(dir),
      "invalid-manifest",
      `invalid manifest ${join(dir, "plugin.json")}: hostVersions: "newest" is not a semver range`,
    );
  });

  test("a plugin.sig that is not JSON is named by its path", async () => {
    const dir = pluginDir();
    writeFileSync(join(dir, "plugin.sig"), "{algorithm: ed25519");
    await rejectsWith(
      loadPluginDir(dir),
      "verification-failed",
      `signature ${join(dir, "plugin.sig")} is not JSON`,
    );
  });
});

describe("verifying a plugin directory", () => {
  test("a good plugin verifies: its signer, its files with their digests, the platform", async () => {
    const dir = pluginDir();
    assert.deepEqual(await verifyPluginDir(await loadPluginDir(dir), { trustedKeys }), {
      signedBy: signer.keyId,
      files: { "bin/greeter": sha256(PROGRAM) },
      platform: HERE,
    });
  });

  test("a YAML manifest verifies, and is not taken for an unlisted file", async () => {
    const dir = pluginDir(manifest, "plugin.yaml");
    const loaded = await loadPluginDir(dir);
    assert.equal(loaded.manifestFile, "plugin.yaml");
    assert.equal((await verifyPluginDir(loaded, { trustedKeys })).signedBy, signer.keyId);
  });

  test("a changed file is refused with the plugin, the file, and both digests", async () => {
    const dir = pluginDir();
    const changed = "#!/bin/sh\nrm -rf ~\n";
    writeFileSync(join(dir, "bin", "greeter"), changed);
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      "verification-failed",
      `plugin "greeter" 1.2.3: file bin/greeter has digest ${sha256(changed)}, but the manifest expects ${sha256(PROGRAM)}`,
    );
  });

  test("a file the platform needs that is missing is named", async () => {
    const dir = pluginDir();
    rmSync(join(dir, "bin", "greeter"));
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      "verification-failed",
      `plugin "greeter" 1.2.3: file bin/greeter is missing from ${dir}`,
    );
  });

  test("an unsigned plugin fails closed unless explicitly allowed", async () => {
    const dir = pluginDir();
    rmSync(join(dir, "plugin.sig"));
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      "verification-failed",
      `plugin "greeter" 1.2.3 at ${dir} is unsigned (no plugin.sig); refusing to run it. ` +
        "Sign it with 'connect-plugin sign', or allow unsigned plugins explicitly",
    );
    const v = await verifyPluginDir(await loadPluginDir(dir), { trustedKeys, allowUnsigned: true });
    assert.equal(v.signedBy, undefined);
    assert.deepEqual(v.files, { "bin/greeter": sha256(PROGRAM) });
  });

  test("allowing unsigned plugins does not skip the digests", async () => {
    const dir = pluginDir();
    rmSync(join(dir, "plugin.sig"));
    writeFileSync(join(dir, "bin", "greeter"), "changed");
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys, allowUnsigned: true }),
      "verification-failed",
      `plugin "greeter" 1.2.3: file bin/greeter has digest ${sha256("changed")}, but the manifest expects ${sha256(PROGRAM)}`,
    );
  });

  test("a manifest edited after signing is refused", async () => {
    const dir = pluginDir();
    writeFileSync(join(dir, "plugin.json"), JSON.stringify({ ...manifest, version: "1.2.4" }));
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      "verification-failed",
      `plugin "greeter" 1.2.4: the signature by key ${signer.keyId} does not match the manifest (the manifest was changed after signing)`,
    );
  });

  test("a signer that is not trusted is named, with the trusted keys' directory", async () => {
    const dir = pluginDir();
    const other = trustedKey(generateKeyPair().publicKeyPem, "other.pub");
    const untrusted = `plugin "greeter" 1.2.3 is signed by key ${signer.keyId}, which is not a trusted key`;
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys: [other] }),
      "verification-failed",
      untrusted,
    );
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), {
        trustedKeys: [],
        trustedKeysDir: "/etc/cp/keys",
      }),
      "verification-failed",
      `${untrusted} (no trusted keys in /etc/cp/keys: put the signer's .pub file there)`,
    );
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), {
        trustedKeys: [other],
        trustedKeysDir: "/etc/cp/keys",
      }),
      "verification-failed",
      `${untrusted} (trusted keys in /etc/cp/keys: ${other.keyId})`,
    );
  });

  test("a file the manifest does not list is refused", async () => {
    const dir = pluginDir();
    writeFileSync(join(dir, "bin", "extra.so"), "x");
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      "verification-failed",
      `plugin "greeter" 1.2.3: file bin/extra.so in ${dir} is not listed in the manifest`,
    );
  });

  test("a symbolic link is refused", async () => {
    const dir = pluginDir();
    symlinkSync("/etc/passwd", join(dir, "bin", "passwd"));
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
      "verification-failed",
      `${join(dir, "bin", "passwd")} is a symbolic link; plugins ship only regular files`,
    );
  });

  test("anything else that is not a regular file (a socket) is refused", async () => {
    const dir = pluginDir();
    const path = join(dir, "bin", "sock");
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, resolve);
    });
    try {
      await rejectsWith(
        verifyPluginDir(await loadPluginDir(dir), { trustedKeys }),
        "verification-failed",
        `${path} is not a regular file; plugins ship only regular files`,
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// computeFiles (what `sign --update-files` and `init` write into `files`)
// skips every manifest name; verification would refuse the second one as a
// file the manifest does not list, which signing again could not fix. Two
// manifests are refused at load instead, naming both.
test("a directory with two manifests is refused at load, naming both", async () => {
  const dir = tempDir("cp-pdir-");
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "bin", "greeter"), PROGRAM);
  writeFileSync(join(dir, "plugin.yaml"), toYaml(manifest));
  const m = { ...manifest, files: await computeFiles(dir) };
  writeFileSync(join(dir, "plugin.json"), JSON.stringify(m));
  await assert.rejects(loadPluginDir(dir), (e: unknown) => {
    assert.ok(e instanceof ManagementError);
    assert.equal(e.kind, "invalid-manifest");
    assert.equal(
      e.message,
      `${dir} has more than one manifest (plugin.json, plugin.yaml); keep one`,
    );
    return true;
  });
});

describe("the platform verified", () => {
  const twoPlatforms = {
    ...manifest,
    entrypoints: { [HERE]: { file: "bin/greeter" }, [ELSEWHERE]: { file: "bin/greeter-other" } },
    files: { ...manifest.files, "bin/greeter-other": sha256("other") },
  };

  test("only this platform's files need be present", async () => {
    const dir = pluginDir(twoPlatforms);
    const v = await verifyPluginDir(await loadPluginDir(dir), { trustedKeys });
    assert.deepEqual(v.files, { "bin/greeter": sha256(PROGRAM) });
    assert.equal(v.platform, HERE);
  });

  test("another platform's files are checked when it is asked for", async () => {
    const dir = pluginDir(twoPlatforms);
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys, platform: ELSEWHERE }),
      "verification-failed",
      `plugin "greeter" 1.2.3: file bin/greeter-other is missing from ${dir}`,
    );
    writeFileSync(join(dir, "bin", "greeter-other"), "other");
    const v = await verifyPluginDir(await loadPluginDir(dir), {
      trustedKeys,
      platform: ELSEWHERE,
    });
    assert.deepEqual(v, {
      signedBy: signer.keyId,
      files: { "bin/greeter-other": sha256("other") },
      platform: ELSEWHERE,
    });
  });

  test("a platform the plugin has no entrypoint for is named with the ones it has", async () => {
    const dir = pluginDir();
    await rejectsWith(
      verifyPluginDir(await loadPluginDir(dir), { trustedKeys, platform: "windows/amd64" }),
      "unsupported-platform",
      `plugin "greeter" 1.2.3 has no entrypoint for windows/amd64 (it supports: ${HERE})`,
    );
  });
});
