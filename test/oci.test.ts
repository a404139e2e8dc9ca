import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ManagementError } from "../src/manifest/errors.js";
import { hostPlatform } from "../src/manifest/platform.js";
import { pullPlugin, pushPlugin } from "../src/oci/artifact.js";
import { BlobCache } from "../src/oci/blob-cache.js";
import {
  OCI_MANIFEST,
  PLUGIN_FILE_MEDIA,
  PLUGIN_MANIFEST_MEDIA,
  TITLE,
} from "../src/oci/media-types.js";
import { parseReference } from "../src/oci/reference.js";
import { MAX_MANIFEST_BYTES, RegistryClient } from "../src/oci/registry-client.js";
import { Installer } from "../src/manager/installer.js";
import { sha256 } from "../src/manifest/digest.js";
import { loadPluginDir } from "../src/security/plugin-dir.js";
import { signManifest } from "../src/security/signing.js";
import { selfSignedCert, tempDir, waitFor } from "./helpers.js";
import {
  keysOnDisk,
  kvPluginDir,
  startFaultProxy,
  startRegistry,
  type Fault,
  type Registry,
} from "./oci-helpers.js";

const platform = hostPlatform();

function isError(kind: ManagementError["kind"], pattern: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof ManagementError, `expected a ManagementError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

/** A signed KV plugin directory and the keys that trust it. */
async function signedKv() {
  const keys = keysOnDisk();
  const dir = await kvPluginDir();
  const loaded = await loadPluginDir(dir);
  writeFileSync(
    join(dir, "plugin.sig"),
    JSON.stringify(signManifest(loaded.manifest, keys.privateKeyPem)),
  );
  return { keys, dir, loaded: await loadPluginDir(dir) };
}

describe("OCI distribution against docker-registry without auth", () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry("none");
  });
  after(() => registry.stop());

  test("push then pull: an index across platforms, one layer per file, every digest checked", async () => {
    const { keys, loaded } = await signedKv();
    const ref = parseReference(`${registry.host}/plugins/kv:1.0.0`);
    const pushed = await pushPlugin(new RegistryClient({ registry: registry.host }), ref, loaded);
    assert.deepEqual(Object.keys(pushed.platforms).sort(), [
      "darwin/amd64",
      "darwin/arm64",
      "linux/amd64",
      "linux/arm64",
    ]);
    assert.match(pushed.digest, /^sha256:[a-f0-9]{64}$/);

    const cache = new BlobCache(tempDir("cp-cache-"));
    const pulled = await pullPlugin(
      new RegistryClient({ registry: registry.host }),
      ref,
      platform,
      cache,
    );
    assert.equal(pulled.digest, pushed.digest);
    assert.equal(pulled.manifest.name, "kv");
    const file = pulled.files.get("kv-plugin.mjs") as string;
    assert.equal(sha256(readFileSync(file)), loaded.manifest.files["kv-plugin.mjs"]);
    assert.ok(
      file.startsWith(join(cache.dir, "blobs", "sha256")),
      "blobs live in the content-addressed cache",
    );

    const pluginsDir = tempDir("cp-plugins-");
    const installed = await new Installer(pluginsDir, {
      trustedKeys: (await import("../src/security/signing.js")).loadTrustedKeys(keys.trustedDir),
    }).fromPulled(pulled);
    assert.equal(installed.verification.signedBy, keys.keyId);
    assert.deepEqual(readdirSync(join(pluginsDir, "kv")).sort(), [
      "kv-plugin.mjs",
      "plugin.json",
      "plugin.sig",
    ]);
  });

  test("a platform missing from the index is refused, naming the platforms it has", async () => {
    const { dir } = await signedKv();
    const raw = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as {
      entrypoints: Record<string, unknown>;
    };
    raw.entrypoints = { "windows/amd64": raw.entrypoints["linux/amd64"] };
    writeFileSync(join(dir, "plugin.json"), JSON.stringify(raw));
    const ref = parseReference(`${registry.host}/plugins/kv-windows:1.0.0`);
    await pushPlugin(
      new RegistryClient({ registry: registry.host }),
      ref,
      await loadPluginDir(dir),
    );
    const cache = tempDir("cp-cache-");
    await assert.rejects(
      pullPlugin(
        new RegistryClient({ registry: registry.host }),
        ref,
        platform,
        new BlobCache(cache),
      ),
      isError(
        "unsupported-platform",
        new RegExp(`kv-windows:1.0.0 has no artifact for ${platform} \\(it has: windows/amd64\\)`),
      ),
    );
  });

  test("an image manifest for the wrong platform is refused when pulled by digest", async () => {
    const { dir } = await signedKv();
    const raw = JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8")) as {
      entrypoints: Record<string, unknown>;
    };
    raw.entrypoints = { "plan9/mips": raw.entrypoints["linux/amd64"] };
    writeFileSync(join(dir, "plugin.json"), JSON.stringify(raw));
    const ref = parseReference(`${registry.host}/plugins/kv-plan9:1.0.0`);
    const pushed = await pushPlugin(
      new RegistryClient({ registry: registry.host }),
      ref,
      await loadPluginDir(dir),
    );
    const byDigest = parseReference(
      `${registry.host}/plugins/kv-plan9@${pushed.platforms["plan9/mips"]}`,
    );
    await assert.rejects(
      pullPlugin(
        new RegistryClient({ registry: registry.host }),
        byDigest,
        platform,
        new BlobCache(tempDir("cp-cache-")),
      ),
      isError(
        "unsupported-platform",
        new RegExp(`is plugin "kv" 1.0.0 for plan9/mips, not for ${platform}`),
      ),
    );
  });

  test("a path-traversal file name inside an artifact is refused before anything is written", async () => {
    const client = new RegistryClient({ registry: registry.host });
    const evil = Buffer.from("#!/bin/sh\necho pwned\n");
    const manifest = {
      schemaVersion: 1,
      name: "evil",
      version: "1.0.0",
      description: "",
      license: "MIT",
      entrypoints: { [platform]: { file: "run.sh" } },
      protocolVersions: [1],
      plugins: [{ name: "kv", service: "example.kv.v1.KV" }],
      hostVersions: "*",
      files: { "run.sh": sha256(evil) },
    };
    const config = Buffer.from(JSON.stringify(manifest));
    await client.pushBlob("plugins/evil", config);
    await client.pushBlob("plugins/evil", evil);
    const image = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: PLUGIN_MANIFEST_MEDIA, digest: sha256(config), size: config.length },
      layers: [
        {
          mediaType: PLUGIN_FILE_MEDIA,
          digest: sha256(evil),
          size: evil.length,
          annotations: { [TITLE]: "../../evil.sh" },
        },
      ],
    };
    await client.pushManifest(
      "plugins/evil",
      "1.0.0",
      OCI_MANIFEST,
      Buffer.from(JSON.stringify(image)),
    );
    const pluginsDir = tempDir("cp-plugins-");
    await assert.rejects(
      pullPlugin(
        client,
        parseReference(`${registry.host}/plugins/evil:1.0.0`),
        platform,
        new BlobCache(join(pluginsDir, "cache")),
      ),
      isError(
        "verification-failed",
        /refusing layer sha256:[a-f0-9]+ named "..\/..\/evil.sh": the file name climbs out of the plugin directory/,
      ),
    );
    assert.equal(existsSync(join(pluginsDir, "..", "evil.sh")), false);
  });

  test("an unknown tag is a not-found error naming the reference", async () => {
    await assert.rejects(
      pullPlugin(
        new RegistryClient({ registry: registry.host }),
        parseReference(`${registry.host}/plugins/nope:9.9.9`),
        platform,
        new BlobCache(tempDir("cp-cache-")),
      ),
      isError(
        "not-found",
        new RegExp(`${registry.host}/plugins/nope:9.9.9 not found \\(the registry answered 404\\)`),
      ),
    );
  });
});

describe("registry faults through a proxy in front of a real registry", () => {
  let registry: Registry;
  let ref: string;
  let fileDigest: string;
  before(async () => {
    registry = await startRegistry("none");
    const { loaded } = await signedKv();
    await pushPlugin(
      new RegistryClient({ registry: registry.host }),
      parseReference(`${registry.host}/plugins/kv:1.0.0`),
      loaded,
    );
    fileDigest = loaded.manifest.files["kv-plugin.mjs"] as string;
    ref = "plugins/kv:1.0.0";
  });
  after(() => registry.stop());

  async function pullThrough(decide: (url: string, method: string) => Fault) {
    const proxy = await startFaultProxy(registry.host, (req) =>
      decide(req.url ?? "", req.method ?? ""),
    );
    const cache = new BlobCache(tempDir("cp-cache-"));
    try {
      const client = new RegistryClient({ registry: proxy.host, retryDelayMs: 10 });
      const result = await pullPlugin(
        client,
        parseReference(`${proxy.host}/${ref}`),
        platform,
        cache,
      ).then(
        (value) => ({ value, error: undefined }),
        (error: unknown) => ({ value: undefined, error }),
      );
      return { ...result, requests: proxy.requests, cache };
    } finally {
      await proxy.stop();
    }
  }

  const blobUrl = () => `/v2/plugins/kv/blobs/${fileDigest}`;

  test("a corrupt blob is retried, then fails with the expected and actual digests; the cache keeps nothing", async () => {
    const { error, requests, cache } = await pullThrough((url) =>
      url === blobUrl() ? "corrupt" : undefined,
    );
    assert.ok(error !== undefined);
    isError(
      "verification-failed",
      new RegExp(
        `is corrupt: expected digest ${fileDigest}, got sha256:[a-f0-9]{64} \\(\\d+ bytes\\); gave up after 3 attempts`,
      ),
    )(error);
    assert.equal(requests.filter((r) => r === `GET ${blobUrl()}`).length, 3);
    assert.equal(cache.has(fileDigest), false);
  });

  test("a truncated download is retried and succeeds when the next attempt is whole", async () => {
    let cut = 0;
    const { error, value } = await pullThrough((url) =>
      url === blobUrl() && cut++ === 0 ? "truncate" : undefined,
    );
    assert.equal(error, undefined);
    assert.equal(sha256(readFileSync(value?.files.get("kv-plugin.mjs") as string)), fileDigest);
    assert.equal(cut, 2);
  });

  test("a download truncated every time fails cleanly after the retries", async () => {
    const { error, requests, cache } = await pullThrough((url) =>
      url === blobUrl() ? "truncate" : undefined,
    );
    isError(
      "registry",
      /download of sha256:[a-f0-9]+ was cut off after \d+ of \d+ bytes.*gave up on blob .* after 3 attempts/,
    )(error);
    assert.equal(requests.filter((r) => r === `GET ${blobUrl()}`).length, 3);
    assert.equal(cache.has(fileDigest), false);
  });

  test("401 without credentials says that none are configured", async () => {
    const { error } = await pullThrough(() => 401);
    isError(
      "registry",
      /requires authentication \(401 Unauthorized\), and no credentials are configured for it/,
    )(error);
  });

  test("404 on a blob names the blob and the repository", async () => {
    const { error } = await pullThrough((url) => (url === blobUrl() ? 404 : undefined));
    isError(
      "not-found",
      new RegExp(`blob ${fileDigest} not found in 127.0.0.1:\\d+/plugins/kv`),
    )(error);
  });

  test("500 is retried, then reported with the status", async () => {
    const { error, requests } = await pullThrough((url) =>
      url.includes("/manifests/") ? 500 : undefined,
    );
    isError(
      "registry",
      /answered 500 Internal Server Error to GET manifest plugins\/kv:1.0.0 \(after 3 attempts\)/,
    )(error);
    assert.equal(requests.filter((r) => r.includes("/manifests/")).length, 3);
  });
});

describe("registry authentication", () => {
  test("basic auth (htpasswd), with credentials read from docker's config.json via DOCKER_CONFIG", async () => {
    const registry = await startRegistry("basic");
    try {
      const { loaded } = await signedKv();
      const ref = parseReference(`${registry.host}/plugins/kv:1.0.0`);
      await assert.rejects(
        pushPlugin(
          new RegistryClient({
            registry: registry.host,
            credentials: { username: "ada", password: "wrong" },
          }),
          ref,
          loaded,
        ),
        isError(
          "registry",
          /refused the credentials for repository:plugins\/kv:pull \(401 Unauthorized\)/,
        ),
      );
      const dockerDir = tempDir("cp-docker-");
      writeFileSync(
        join(dockerDir, "config.json"),
        JSON.stringify({
          auths: { [registry.host]: { auth: Buffer.from("ada:s3cret").toString("base64") } },
        }),
      );
      const saved = process.env.DOCKER_CONFIG;
      process.env.DOCKER_CONFIG = dockerDir;
      try {
        const client = new RegistryClient({ registry: registry.host });
        await pushPlugin(client, ref, loaded);
        const pulled = await pullPlugin(client, ref, platform, new BlobCache(tempDir("cp-cache-")));
        assert.equal(pulled.manifest.name, "kv");
      } finally {
        if (saved === undefined) delete process.env.DOCKER_CONFIG;
        else process.env.DOCKER_CONFIG = saved;
      }
    } finally {
      await registry.stop();
    }
  });

  test("the Bearer token flow: realm, service and scope, with a token server the registry trusts", async () => {
    const registry = await startRegistry("token");
    try {
      const { loaded } = await signedKv();
      const ref = parseReference(`${registry.host}/plugins/kv:1.0.0`);
      await assert.rejects(
        pushPlugin(
          new RegistryClient({
            registry: registry.host,
            credentials: { username: "ada", password: "nope" },
          }),
          ref,
          loaded,
        ),
        isError(
          "registry",
          /the token service http:\/\/127.0.0.1:\d+ for registry 127.0.0.1:\d+ refused a token for repository:plugins\/kv:pull \(401 Unauthorized\)/,
        ),
      );
      const client = new RegistryClient({
        registry: registry.host,
        credentials: { username: "ada", password: "s3cret" },
      });
      await pushPlugin(client, ref, loaded);
      const pulled = await pullPlugin(
        new RegistryClient({
          registry: registry.host,
          credentials: { username: "ada", password: "s3cret" },
        }),
        ref,
        platform,
        new BlobCache(tempDir("cp-cache-")),
      );
      assert.equal(pulled.manifest.version, "1.0.0");
      assert.ok(
        registry.tokenRequests.some(
          (q) =>
            q.includes("service=test-registry") &&
            // The registry's challenge names the actions in either order.
            /scope=repository%3Aplugins%2Fkv%3A(pull%2Cpush|push%2Cpull)/.test(q),
        ),
        registry.tokenRequests.join("\n"),
      );
      assert.ok(
        registry.tokenRequests.some(
          (q) => q.includes("scope=repository%3Aplugins%2Fkv%3Apull") && !q.includes("push"),
        ),
      );
    } finally {
      await registry.stop();
    }
  });
});

describe("a full disk during install", () => {
  test("ENOSPC on a 1 MiB tmpfs leaves nothing half-installed", async (t) => {
    const mountPoint = tempDir("cp-tmpfs-");
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mountPoint], {
        stdio: "ignore",
      });
    } catch {
      t.skip(
        "cannot mount a tmpfs here (needs root); the injected-error tests below cover the rest",
      );
      return;
    }
    try {
      const { keys, dir } = await signedKv();
      const pluginsDir = join(mountPoint, "plugins");
      mkdirSync(pluginsDir);
      const { loadTrustedKeys } = await import("../src/security/signing.js");
      await assert.rejects(
        new Installer(pluginsDir, { trustedKeys: loadTrustedKeys(keys.trustedDir) }).fromDirectory(
          dir,
        ),
        isError(
          "io",
          new RegExp(
            `installing into ${pluginsDir} failed, nothing was installed: no space left on device`,
          ),
        ),
      );
      assert.deepEqual(readdirSync(pluginsDir), []);
    } finally {
      execFileSync("umount", [mountPoint]);
    }
  });
});

/** A fake registry (a plain HTTP server run here) whose answers a test scripts, to act hostile. */
async function fakeServer(handler: http.RequestListener) {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const imageWith = (config: unknown, layers: unknown = []) =>
  JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers });

describe("hostile registries (fake registry servers)", () => {
  test("fake registry: a ../ config digest is refused before any file is read or deleted", async () => {
    const victimDir = tempDir("cp-victim-");
    const victim = join(victimDir, "victim.txt");
    writeFileSync(victim, "important\n");
    const cache = new BlobCache(tempDir("cp-cache-"));
    const evil = `sha256:${"../".repeat(12)}${victim.slice(1)}`;
    const fake = await fakeServer((req, res) => {
      if (req.url?.includes("/manifests/")) {
        res.setHeader("content-type", OCI_MANIFEST);
        res.end(imageWith({ mediaType: PLUGIN_MANIFEST_MEDIA, digest: evil, size: 10 }));
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    try {
      await assert.rejects(
        pullPlugin(
          new RegistryClient({ registry: fake.host, attempts: 1 }),
          parseReference(`${fake.host}/evil:latest`),
          platform,
          cache,
        ),
        isError("verification-failed", /config: refusing malformed digest "sha256:\.\.\/\.\.\//),
      );
      assert.equal(readFileSync(victim, "utf8"), "important\n", "the victim file is untouched");
      // The cache itself refuses such a digest too (second line of defence).
      assert.throws(() => cache.path(evil), isError("verification-failed", /malformed digest/));
      await assert.rejects(cache.get(evil), isError("verification-failed", /malformed digest/));
    } finally {
      await fake.stop();
    }
  });

  test("fake registry: malformed layer digests, non-JSON and wrongly shaped manifests get documented errors", async () => {
    const goodDigest = sha256("x");
    let answer = "";
    const fake = await fakeServer((req, res) => {
      res.setHeader("content-type", OCI_MANIFEST);
      res.end(answer);
    });
    const pull = () =>
      pullPlugin(
        new RegistryClient({ registry: fake.host, attempts: 1 }),
        parseReference(`${fake.host}/evil:latest`),
        platform,
        new BlobCache(tempDir("cp-cache-")),
      );
    try {
      answer = imageWith({ mediaType: PLUGIN_MANIFEST_MEDIA, digest: goodDigest, size: 1 }, [
        { mediaType: PLUGIN_FILE_MEDIA, digest: "sha256:../../etc/passwd", size: 1 },
      ]);
      await assert.rejects(
        pull(),
        isError("verification-failed", /layers\[0\]: refusing malformed digest/),
      );
      answer = JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: OCI_MANIFEST, digest: "sha256:ABC", size: 1 }],
      });
      await assert.rejects(
        pull(),
        isError("verification-failed", /manifests\[0\]: refusing malformed digest "sha256:ABC"/),
      );
      answer = "<html>captive portal</html>";
      await assert.rejects(
        pull(),
        isError(
          "registry",
          /the registry answered with something that is not JSON \("<html>captive portal/,
        ),
      );
      answer = JSON.stringify({
        config: { mediaType: PLUGIN_MANIFEST_MEDIA, digest: goodDigest, size: 1 },
        layers: 7,
      });
      await assert.rejects(
        pull(),
        isError("invalid-manifest", /is malformed: layers is not an array/),
      );
    } finally {
      await fake.stop();
    }
  });

  test("fake registry: credentials never go to an upload Location on another origin (second server)", async () => {
    const seen: (string | undefined)[] = [];
    const other = await fakeServer((req, res) => {
      seen.push(req.headers.authorization);
      res.statusCode = 201;
      res.end();
    });
    const registryAuth: (string | undefined)[] = [];
    const fake = await fakeServer((req, res) => {
      registryAuth.push(req.headers.authorization);
      if (req.headers.authorization === undefined) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
      } else if (req.method === "HEAD") {
        res.writeHead(404).end();
      } else if (req.method === "POST") {
        // "localhost" vs "127.0.0.1": another origin, as another host would be.
        res
          .writeHead(202, { location: `http://localhost:${other.host.split(":")[1]}/steal` })
          .end();
      } else {
        res.writeHead(500).end();
      }
    });
    try {
      const client = new RegistryClient({
        registry: fake.host,
        credentials: { username: "alice", password: "s3cret" },
        attempts: 1,
      });
      await client.pushBlob("x", Buffer.from("hi"));
      assert.deepEqual(seen, [undefined], "the other origin got the upload, but no Authorization");
      const basic = `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;
      assert.ok(registryAuth.includes(basic), "the registry itself did get the credentials");
    } finally {
      await fake.stop();
      await other.stop();
    }
  });

  test("fake registry: a blob body larger than its declared size is aborted as soon as more arrives", async () => {
    let sent = 0;
    let closedEarly = false;
    const fake = await fakeServer((req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 97);
      res.on("close", () => (closedEarly = sent < 200 * chunk.length));
      const write = () => {
        while (sent < 200 * chunk.length) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", write);
            return;
          }
        }
        res.end();
      };
      write();
    });
    try {
      const digest = sha256("0123456789");
      await assert.rejects(
        new RegistryClient({ registry: fake.host, attempts: 1 }).pullBlob("x", digest, 10),
        isError(
          "verification-failed",
          new RegExp(
            `download of ${digest} is larger than the 10 bytes it may have \\(more than 10 bytes arrived\\); aborted`,
          ),
        ),
      );
      await waitFor("the server to see the connection closed", () => closedEarly, 10_000);
      assert.ok(sent < 200 * 64 * 1024, `the server could not send everything (sent ${sent})`);
    } finally {
      await fake.stop();
    }
  });

  test("fake registry: a manifest over 4 MiB is refused", async () => {
    const fake = await fakeServer((req, res) => {
      res.setHeader("content-type", OCI_MANIFEST);
      res.end(Buffer.alloc(MAX_MANIFEST_BYTES + 1, 32));
    });
    try {
      await assert.rejects(
        new RegistryClient({ registry: fake.host, attempts: 1 }).getManifest("x", "latest"),
        isError(
          "verification-failed",
          /download of latest is larger than the 4194304 bytes it may have/,
        ),
      );
    } finally {
      await fake.stop();
    }
  });

  test("fake registry: a reset connection on GET is retried; a stalled body times out and is retried", async () => {
    let requests = 0;
    const fake = await fakeServer((req, res) => {
      requests++;
      if (requests === 1) {
        req.socket.destroy(); // before any header: a network error
        return;
      }
      res.writeHead(404).end();
    });
    try {
      await assert.rejects(
        new RegistryClient({ registry: fake.host, retryDelayMs: 10 }).pullBlob("x", sha256("a"), 1),
        isError("not-found", /blob sha256:[a-f0-9]{64} not found/),
      );
      assert.equal(requests, 2, "the reset request was tried again");
    } finally {
      await fake.stop();
    }
    let stalls = 0;
    const stalling = await fakeServer((req, res) => {
      stalls++;
      res.writeHead(200, { "content-length": "10" });
      res.write("01234"); // and then nothing
    });
    try {
      await assert.rejects(
        new RegistryClient({
          registry: stalling.host,
          retryDelayMs: 10,
          attempts: 2,
          stallTimeoutMs: 300,
        }).pullBlob("x", sha256("0123456789"), 10),
        isError(
          "registry",
          /was cut off after 5 of 10 bytes \(no data for 300 ms\); gave up on blob .* after 2 attempts/,
        ),
      );
      assert.equal(stalls, 2);
    } finally {
      await stalling.stop();
    }
  });
});

describe("install failures injected through the installer's file seam (fake fs errors)", () => {
  /** A pulled (cached) unsigned plugin "inj" of the given version, without a registry. */
  async function pulledInj(version: string) {
    const cache = new BlobCache(tempDir("cp-cache-"));
    const body = Buffer.from(`#!/bin/sh\necho ${version}\n`);
    const blob = await cache.put(sha256(body), body);
    const manifest = {
      schemaVersion: 1 as const,
      name: "inj",
      version,
      description: "",
      license: "MIT",
      entrypoints: { [platform]: { file: "bin/run" } },
      protocolVersions: [1],
      plugins: [{ name: "kv", service: "x.KV" }],
      hostVersions: "*",
      files: { "bin/run": sha256(body) },
    };
    return {
      manifest,
      signature: undefined,
      files: new Map([["bin/run", blob]]),
      digest: sha256("index"),
      manifestDigest: sha256("manifest"),
      platform,
    };
  }
  const enospc = () =>
    Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });

  test("fake ENOSPC while copying a pulled plugin: an io error, the previous version stays, nothing half-installed", async () => {
    const pluginsDir = tempDir("cp-plugins-");
    await new Installer(pluginsDir, { trustedKeys: [], allowUnsigned: true }).fromPulled(
      await pulledInj("1.0.0"),
    );
    const full = new Installer(
      pluginsDir,
      { trustedKeys: [], allowUnsigned: true },
      { copyFile: () => Promise.reject(enospc()) },
    );
    await assert.rejects(
      full.fromPulled(await pulledInj("2.0.0")),
      isError(
        "io",
        new RegExp(
          `installing into ${pluginsDir} failed, nothing was installed: no space left on device`,
        ),
      ),
    );
    assert.deepEqual(readdirSync(pluginsDir), ["inj"]);
    assert.match(readFileSync(join(pluginsDir, "inj", "plugin.json"), "utf8"), /"1\.0\.0"/);
  });

  test("fake failing rename into place: the previous version is moved back, no aside copy is left", async () => {
    const pluginsDir = tempDir("cp-plugins-");
    await new Installer(pluginsDir, { trustedKeys: [], allowUnsigned: true }).fromPulled(
      await pulledInj("1.0.0"),
    );
    const { rename } = await import("node:fs/promises");
    const failing = new Installer(
      pluginsDir,
      { trustedKeys: [], allowUnsigned: true },
      {
        rename: (from, to) =>
          from.includes(".staging-")
            ? Promise.reject(Object.assign(new Error("EIO: i/o error, rename"), { code: "EIO" }))
            : rename(from, to),
      },
    );
    await assert.rejects(
      failing.fromPulled(await pulledInj("2.0.0")),
      isError("io", /nothing was installed: EIO: i\/o error, rename/),
    );
    assert.deepEqual(readdirSync(pluginsDir), ["inj"], "no .old- or .staging- leftovers");
    assert.match(readFileSync(join(pluginsDir, "inj", "plugin.json"), "utf8"), /"1\.0\.0"/);
    assert.equal(
      statSync(join(pluginsDir, "inj", "bin", "run")).mode & 0o777,
      0o755,
      "exec entrypoints are installed executable",
    );
  });

  test("a valid plugin name containing .old- is still listed", async () => {
    const pluginsDir = tempDir("cp-plugins-");
    const pulled = await pulledInj("1.0.0");
    await new Installer(pluginsDir, { trustedKeys: [], allowUnsigned: true }).fromPulled({
      ...pulled,
      manifest: { ...pulled.manifest, name: "foo.old-bar" },
    });
    const { installedNames } = await import("../src/manager/installer.js");
    assert.deepEqual(await installedNames(pluginsDir), ["foo.old-bar"]);
  });
});

describe("token realms (fake https registry in a child process that trusts its certificate)", () => {
  test("fake registry: Basic credentials are never sent to a plain-http token realm named by an https registry", async () => {
    const dir = tempDir("cp-tlsreg-");
    const { certFile, keyFile } = selfSignedCert(dir, "registry", "/CN=127.0.0.1", [
      "subjectAltName=IP:127.0.0.1",
    ]);
    const tokenRequests: (string | undefined)[] = [];
    const tokenServer = await fakeServer((req, res) => {
      tokenRequests.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json" }).end('{"token":"t"}');
    });
    const https = await import("node:https");
    const registry = https.createServer(
      { key: readFileSync(keyFile), cert: readFileSync(certFile) },
      (req, res) => {
        res
          .writeHead(401, {
            "www-authenticate": `Bearer realm="http://${tokenServer.host}/token",service="reg"`,
          })
          .end();
      },
    );
    await new Promise<void>((r) => registry.listen(0, "127.0.0.1", r));
    const host = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
    const clientModule = new URL("../src/oci/registry-client.js", import.meta.url).href;
    const script =
      `const { RegistryClient } = await import(${JSON.stringify(clientModule)});\n` +
      `const c = new RegistryClient({ registry: ${JSON.stringify(host)}, plainHttp: false, attempts: 1, ` +
      `credentials: { username: "alice", password: "s3cret" } });\n` +
      `try { await c.getManifest("x", "latest"); console.log("no error"); } ` +
      `catch (e) { console.log(e.kind + ": " + e.message); }\n`;
    try {
      const { spawn } = await import("node:child_process");
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: certFile },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (out += c.toString()));
      await new Promise((r) => child.once("exit", r));
      assert.match(
        out,
        new RegExp(
          `registry: registry ${host} names the token realm http://${tokenServer.host}, which is not https; ` +
            `refusing to send credentials there in the clear`,
        ),
      );
      assert.deepEqual(tokenRequests, [], "the plain-http realm was never contacted");
    } finally {
      registry.closeAllConnections();
      await new Promise((r) => registry.close(r));
      await tokenServer.stop();
    }
  });
});
