/**
 * The plugin image (deploy/container/Containerfile), built with Debian's
 * buildah (vfs storage, chroot isolation, storage in a temporary folder) and
 * run: its entrypoint serves the KV plugin in network mode and answers the
 * kubelet-style gRPC probe.
 *
 * No base image can be pulled here (no registry beyond loopback), so the
 * test first makes its own Node.js base image FROM scratch out of this
 * machine's node binary and the shared libraries it links, and passes it as
 * NODE_IMAGE; the Containerfile itself is unchanged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { remote } from "../src/index.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { bundleKvService } from "../examples/kubernetes/bundle.js";
import { freePort } from "../chaos/suite.js";
import { kvClient, tempDir, waitFor } from "./helpers.js";

const containerfile = fileURLToPath(
  new URL("../../deploy/container/Containerfile", import.meta.url),
);

/** Why buildah cannot build and run images here, or undefined when it can. */
function buildahUnusable(): string | undefined {
  const version = spawnSync("buildah", ["--version"], { encoding: "utf8" });
  if (version.error !== undefined || version.status !== 0) {
    return "buildah is not installed (scripts/setup-test-deps.sh installs it when run as root)";
  }
  if (process.getuid?.() !== 0) {
    return "buildah with vfs storage and chroot isolation needs root here (no user namespaces set up)";
  }
  return undefined;
}

const skip = buildahUnusable();

test(
  "container image: the Containerfile builds with buildah, and the image's entrypoint serves the KV plugin and the gRPC probe",
  { skip },
  async () => {
    const dir = tempDir("cp-image-");
    const policy = join(dir, "policy.json");
    // Images here are only ones this test builds from local files.
    writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const storage = [
      "--root",
      join(dir, "storage"),
      "--runroot",
      join(dir, "run"),
      "--storage-driver",
      "vfs",
    ];
    const buildah = (...args: string[]): string =>
      execFileSync("buildah", [...storage, ...args], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }).trim();

    // A Node.js base image FROM scratch: node at /usr/local/bin/node, as in
    // the official node images, with the libraries it links.
    const base = buildah("from", "--signature-policy", policy, "scratch");
    const node = realpathSync(process.execPath);
    buildah("copy", base, node, "/usr/local/bin/node");
    const libraries = execFileSync("ldd", [node], { encoding: "utf8" })
      .split("\n")
      .map((line) => /(\/\S+) \(0x/.exec(line)?.[1])
      .filter((path): path is string => path !== undefined);
    assert.ok(
      libraries.some((l) => l.includes("libc.so")),
      "ldd found no libc",
    );
    for (const library of libraries) buildah("copy", base, realpathSync(library), library);
    buildah("config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", base);
    buildah("commit", "--signature-policy", policy, base, "localhost/cp-test-node-base:1");

    // The image, from the Containerfile as shipped.
    const context = join(dir, "context");
    await bundleKvService(context);
    buildah(
      "bud",
      "--signature-policy",
      policy,
      "--isolation",
      "chroot",
      "--build-arg",
      "NODE_IMAGE=localhost/cp-test-node-base:1",
      "-f",
      containerfile,
      "-t",
      "localhost/kv-plugin:test",
      context,
    );
    const config = (
      JSON.parse(buildah("inspect", "--type", "image", "localhost/kv-plugin:test")) as {
        OCIv1: { config: { Entrypoint: string[]; User: string; Env: string[] } };
      }
    ).OCIv1.config;
    assert.deepEqual(config.Entrypoint, ["/usr/local/bin/node", "/app/kv-service.mjs"]);
    assert.equal(config.User, "65532:65532");
    assert.ok(config.Env.includes("CONNECT_PLUGIN_LISTEN=0.0.0.0:8443"), config.Env.join(" "));

    // Run the image's entrypoint, on loopback ports (chroot isolation shares
    // this machine's network, so the Containerfile's 0.0.0.0 is overridden).
    const container = buildah("from", "--signature-policy", policy, "localhost/kv-plugin:test");
    const [port, probePort] = [await freePort(), await freePort()];
    const run = spawn(
      "buildah",
      [
        ...storage,
        "run",
        "--isolation",
        "chroot",
        "--env",
        `CONNECT_PLUGIN_LISTEN=127.0.0.1:${port}`,
        "--env",
        `PROBE_LISTEN=127.0.0.1:${probePort}`,
        container,
        "--",
        ...config.Entrypoint,
      ],
      { stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    let output = "";
    run.stdout.on("data", (c: Buffer) => (output += c.toString()));
    run.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const exited = new Promise<void>((resolve) => run.once("exit", () => resolve()));
    try {
      await waitFor(
        "the plugin in the container to serve",
        () => {
          if (run.exitCode !== null) throw new Error(`buildah run exited: ${output}`);
          return output.includes('"plugin serving"');
        },
        30_000,
      );
      assert.match(output, new RegExp(`"url":"http://127\\.0\\.0\\.1:${port}"`));
      const client = kvClient(remote(`http://127.0.0.1:${port}`));
      await client.start();
      try {
        const kv = client.dispense("kv");
        await kv.put({ key: "image", value: new TextEncoder().encode("works") });
        assert.equal(new TextDecoder().decode((await kv.get({ key: "image" })).value), "works");
      } finally {
        await client.close();
      }
      const probe = createClient(
        Health,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${probePort}` }),
      );
      await waitFor("the probe port", async () => {
        try {
          return (await probe.check({})).status === HealthCheckResponse_ServingStatus.SERVING;
        } catch {
          return false;
        }
      });
    } finally {
      // buildah run does not forward signals with chroot isolation: stop the group.
      if (run.pid !== undefined && run.exitCode === null) process.kill(-run.pid, "SIGTERM");
      await exited;
      buildah("rm", container, base);
    }
  },
);
