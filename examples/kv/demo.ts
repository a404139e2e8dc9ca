/**
 * `npm start`: the same KV plugin used three ways (as a subprocess, as a
 * remote service over HTTP, and in process) through the same typed client,
 * with one call of each kind: unary, server streaming, client streaming and
 * bidirectional streaming.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { PluginClient, inProcess, remote, subprocess, type PluginSource } from "../../src/index.js";
import { kvPlugin } from "./definition.js";
import { KV, handshake } from "./shared.js";

const pluginMain = fileURLToPath(new URL("./plugin.js", import.meta.url));
const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

async function runKv(label: string, source: PluginSource): Promise<void> {
  const started = performance.now();
  const client = new PluginClient({ handshake, plugins: { kv: KV }, source });
  await client.start();
  const where = client.pid !== undefined ? `pid ${client.pid}` : label;
  console.log(
    `\n== ${label}: started in ${(performance.now() - started).toFixed(1)} ms (${where}), ` +
      `protocol v${client.protocolVersion}, plugins: ` +
      client.availablePlugins.map((p) => `${p.name}@${p.version}`).join(", "),
  );
  const kv = client.dispense("kv");

  await kv.put({ key: "greeting", value: encode(`hello from the ${label} plugin`) });
  const got = await kv.get({ key: "greeting" });
  console.log(`  unary         Get("greeting") = ${JSON.stringify(decode(got.value))}`);

  const abort = new AbortController();
  const watch = kv.watch({ key: "counter" }, { signal: abort.signal });
  const seen: string[] = [];
  const watching = (async () => {
    try {
      for await (const event of watch) {
        seen.push(decode(event.value) || "(unset)");
        if (seen.length === 4) abort.abort();
      }
    } catch {
      // aborted on purpose
    }
  })();
  // Give the watch a moment to register, then make three changes.
  await new Promise((r) => setTimeout(r, 50));
  for (const n of ["1", "2", "3"]) await kv.put({ key: "counter", value: encode(n) });
  await watching;
  console.log(`  server stream Watch("counter") saw ${seen.join(" -> ")}`);

  const { count } = await kv.putMany(
    (async function* () {
      for (const key of ["a", "b", "c"]) yield { key, value: encode(key.toUpperCase()) };
    })(),
  );
  console.log(`  client stream PutMany stored ${count} entries`);

  const answers: string[] = [];
  for await (const res of kv.exchange(
    (async function* () {
      for (const key of ["a", "b", "c", "missing"]) yield { key };
    })(),
  )) {
    answers.push(res.found ? decode(res.value) : "(not found)");
  }
  console.log(`  bidi stream   Exchange(a, b, c, missing) = ${answers.join(", ")}`);
  console.log(`  health: ${await client.health()}`);
  await client.close();
}

/** Starts the plugin as a network service on a free loopback port. */
async function startRemotePlugin(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [pluginMain], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "inherit", "pipe"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stderr.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"url":"([^"]+)"/.exec(buffered);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`remote plugin exited with ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

await runKv("subprocess", subprocess(process.execPath, [pluginMain]));

const service = await startRemotePlugin();
console.log(`\n(remote KV plugin serving at ${service.url})`);
await runKv("remote", remote(service.url));
await service.stop();

await runKv("in-process", inProcess(kvPlugin()));
console.log("\nThe same typed client worked in all three locations.");
