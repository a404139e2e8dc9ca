/**
 * `npm run demo:managed`: the KV plugin run through the plugin manager.
 * Packages the plugin (esbuild bundle + plugin.json), signs it with a fresh
 * ed25519 key, installs it into a plugins directory (verified), and lets the
 * manager start it on the first call, stop it when idle, and restart it
 * after a crash.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Installer,
  PluginManager,
  generateKeyPair,
  loadPluginDir,
  signManifest,
  trustedKey,
} from "../../src/management.js";
import { packageKvPlugin } from "./package-plugin.js";
import { KV, handshake } from "./shared.js";

const work = mkdtempSync(join(tmpdir(), "kv-managed-"));
try {
  const source = join(work, "kv");
  await packageKvPlugin(source);
  const keys = generateKeyPair();
  const { manifest } = await loadPluginDir(source);
  writeFileSync(
    join(source, "plugin.sig"),
    JSON.stringify(signManifest(manifest, keys.privateKeyPem)),
  );
  console.log(`packaged and signed kv ${manifest.version} with key ${keys.keyId.slice(0, 23)}...`);

  const trustedKeys = [trustedKey(keys.publicKeyPem, "demo key")];
  const pluginsDir = join(work, "plugins");
  mkdirSync(pluginsDir);
  const installed = await new Installer(pluginsDir, { trustedKeys }).fromDirectory(source);
  console.log(
    `installed into ${installed.dir} (verified: signature and ${Object.keys(installed.verification.files).length} file digests)`,
  );

  const manager = new PluginManager({
    directories: [pluginsDir],
    trustedKeys,
    idleTimeoutMs: 500,
    onEvent: (name, e) => console.log(`  [manager] ${name}: ${e.type}`),
  });
  await manager.scan();
  console.log(
    `provides (from the manifest, nothing started): ${manager
      .describe("kv")
      .provides.map((p) => p.service)
      .join(", ")}`,
  );
  const plugin = manager.open("kv", { handshake, plugins: { kv: KV } });
  const kv = plugin.dispense("kv");
  await kv.put({ key: "hello", value: new TextEncoder().encode("world") });
  console.log(
    `hello = ${new TextDecoder().decode((await kv.get({ key: "hello" })).value)} (pid ${plugin.pid})`,
  );

  await new Promise((r) => setTimeout(r, 1_000));
  console.log(`after 1 s idle: ${plugin.state}`);
  await kv.put({ key: "again", value: new TextEncoder().encode("started on demand") });
  console.log(`next call started it again (pid ${plugin.pid})`);

  const killed = plugin.pid as number;
  process.kill(killed, "SIGKILL");
  // Calls made while it dies fail with Unavailable (never silently re-run);
  // wait for the supervisor's restart instead.
  while (plugin.state !== "running" || plugin.pid === killed) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await kv.put({ key: "after", value: new TextEncoder().encode("crash") });
  console.log(
    `killed it; the supervisor restarted it (pid ${plugin.pid}, restarts: ${plugin.restarts})`,
  );
  await manager.close();
} finally {
  rmSync(work, { recursive: true, force: true });
}
