/**
 * `npm run bench:upgrade`: how long a hot upgrade takes, from the start of
 * the install to the new version serving (install into the plugins
 * directory, verify, private copy, start, handshake, health check), idle
 * and under 64 concurrent callers; and how long until the old generation is
 * stopped. Prints figures; asserts nothing but 0 failed calls.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KV, handshake } from "../examples/kv/shared.js";
import { Installer, PluginManager } from "../src/management.js";
import { generationPluginDir } from "../test/generation-helpers.js";
import { tempDir } from "../test/helpers.js";
import { median, percentile, round } from "./stats.js";

const upgrades = Number(process.env.UPGRADES ?? 10);

async function run(callers: number): Promise<string[]> {
  const root = tempDir("cp-bench-upg-");
  const plugins = join(root, "plugins");
  const installer = new Installer(plugins, { trustedKeys: [], allowUnsigned: true });
  await installer.fromDirectory(await generationPluginDir("1.0.0"));
  const manager = new PluginManager({
    directories: [plugins],
    allowUnsigned: true,
    runDir: join(root, "run"),
  });
  await manager.scan();
  const ledger = join(root, "ledger");
  writeFileSync(ledger, "");
  const kv = manager
    .open("gen", { handshake, plugins: { kv: KV }, config: { ledger } })
    .dispense("kv");
  await kv.get({ key: "warm" });
  let stop = false;
  let calls = 0;
  let failed = 0;
  const load = Array.from({ length: callers }, async (_, c) => {
    for (let i = 0; !stop; i++) {
      await kv.get({ key: `c${c}-${i}` }).then(
        () => calls++,
        () => failed++,
      );
    }
  });
  const serving: number[] = [];
  const retired: number[] = [];
  try {
    for (let v = 2; v <= upgrades + 1; v++) {
      const dir = await generationPluginDir(`${v}.0.0`);
      const began = performance.now();
      await installer.fromDirectory(dir);
      const installMs = performance.now() - began;
      const result = await manager.upgrade("gen");
      serving.push(installMs + result.servingAfterMs);
      retired.push(performance.now() - began);
    }
  } finally {
    stop = true;
    await Promise.all(load);
    await manager.close();
  }
  const executed = readFileSync(ledger, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("get:c")).length;
  const ms = (xs: number[]) => `${round(median(xs))} / ${round(percentile(xs, 90))}`;
  return [
    `${callers} callers`,
    ms(serving),
    ms(retired),
    String(calls),
    String(failed),
    String(executed - calls),
  ];
}

const rows = [await run(0), await run(64)];
const head = [
  "load",
  "install → serving ms (p50 / p90)",
  "→ old stopped ms",
  "calls",
  "failed",
  "executed ≠ ok",
];
console.log(`${upgrades} upgrades of a Node plugin per row`);
for (const r of [head, ...rows])
  console.log(r.map((c, i) => c.padEnd(i === 0 ? 11 : head[i]!.length)).join("  "));
