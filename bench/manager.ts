/**
 * `npm run bench:manager`: what plugin management costs, with the KV example
 * plugin (a ~300 KB esbuild bundle), against Debian's docker-registry on
 * loopback. Prints figures; asserts nothing.
 */
import { join } from "node:path";
import { KV, handshake } from "../examples/kv/shared.js";
import {
  BlobCache,
  Installer,
  PluginManager,
  RegistryClient,
  loadPluginDir,
  loadTrustedKeys,
  parseReference,
  pullPlugin,
  pushPlugin,
  signManifest,
  verifyPluginDir,
} from "../src/management.js";
import { encode, tempDir } from "../test/helpers.js";
import { keysOnDisk, kvPluginDir, startRegistry } from "../test/oci-helpers.js";
import { writeFileSync } from "node:fs";

async function time<T>(label: string, run: () => Promise<T>, rows: string[][]): Promise<T> {
  const start = performance.now();
  const value = await run();
  rows.push([label, (performance.now() - start).toFixed(1)]);
  return value;
}

const rows: string[][] = [];
const registry = await startRegistry("none");
try {
  const keys = keysOnDisk();
  const dir = await kvPluginDir();
  const loaded = await loadPluginDir(dir);
  writeFileSync(
    join(dir, "plugin.sig"),
    JSON.stringify(signManifest(loaded.manifest, keys.privateKeyPem)),
  );
  const trustedKeys = loadTrustedKeys(keys.trustedDir);
  const signed = await loadPluginDir(dir);
  await time(
    "verify (signature + sha256 of 300 KB)",
    () => verifyPluginDir(signed, { trustedKeys }),
    rows,
  );
  const ref = parseReference(`${registry.host}/bench/kv:1.0.0`);
  await time(
    "push (4 platforms, first time)",
    () => pushPlugin(new RegistryClient({ registry: registry.host }), ref, signed),
    rows,
  );
  await time(
    "push again (blobs already there)",
    () => pushPlugin(new RegistryClient({ registry: registry.host }), ref, signed),
    rows,
  );
  const cache = new BlobCache(tempDir("bench-cache-"));
  const pulled = await time(
    "pull (cold cache)",
    () => pullPlugin(new RegistryClient({ registry: registry.host }), ref, "linux/amd64", cache),
    rows,
  );
  await time(
    "pull (warm cache: manifests only)",
    () => pullPlugin(new RegistryClient({ registry: registry.host }), ref, "linux/amd64", cache),
    rows,
  );
  const pluginsDir = tempDir("bench-plugins-");
  await time(
    "install (stage, verify, rename)",
    () => new Installer(pluginsDir, { trustedKeys }).fromPulled(pulled),
    rows,
  );
  const manager = new PluginManager({
    directories: [pluginsDir],
    trustedKeys,
    restart: { initialBackoffMs: 10 },
  });
  await manager.scan();
  const managed = manager.open("kv", { handshake, plugins: { kv: KV } });
  const kv = managed.dispense("kv");
  await time(
    "first call through the manager (verify + spawn + handshake + call)",
    () => kv.put({ key: "a", value: encode("b") }),
    rows,
  );
  await time("second call", () => kv.get({ key: "a" }), rows);
  const pid = managed.pid as number;
  await time(
    "crash to restarted and serving",
    async () => {
      process.kill(pid, "SIGKILL");
      while (managed.state !== "running" || managed.pid === pid)
        await new Promise((r) => setTimeout(r, 2));
      await kv.get({ key: "a" });
    },
    rows,
  );
  await manager.close();
} finally {
  await registry.stop();
}
const width = Math.max(...rows.map((r) => r[0]?.length ?? 0));
console.log(`${"step".padEnd(width)}  ms`);
for (const [label, ms] of rows) console.log(`${(label ?? "").padEnd(width)}  ${ms}`);
