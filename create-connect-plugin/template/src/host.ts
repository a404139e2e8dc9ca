/**
 * The host: one typed client for the greeter plugin, run in the three places
 * a plugin can live: a subprocess, a remote service, and this process.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { PluginClient, inProcess, remote, subprocess, type PluginSource } from "connect-plugin";
import { greeterPlugin } from "./definition.js";
import { GreeterService, handshake } from "./shared.js";

/**
 * The plugin as `npm run build` makes it from src/plugin.ts
 * (`connect-plugin code-cache`): one CommonJS bundle, started by a small
 * loader with V8's code cache, so that Node reads one file instead of
 * resolving about a hundred modules and deserialises most of its code
 * instead of compiling it. The connect-plugin benchmark's plugin starts so
 * with 15-23% less CPU time than as an ES module bundle (connect-plugin's
 * docs/local-transports.md, session 23). dist/plugin.js works the same,
 * only slower to start.
 */
const pluginMain = fileURLToPath(new URL("./bundle/plugin.cjs", import.meta.url));

async function run(where: string, source: PluginSource): Promise<void> {
  const client = new PluginClient({ handshake, plugins: { greeter: GreeterService }, source });
  await client.start();
  try {
    const greeter = client.dispense("greeter");
    const { message } = await greeter.greet({ name: where });
    const counted: number[] = [];
    for await (const { value } of greeter.countDown({ from: 3 })) counted.push(value);
    console.log(`${where}: ${message} countDown(3) = ${counted.join(", ")}`);
  } finally {
    await client.close();
  }
}

/**
 * Starts the plugin as a network service on a free loopback port, as
 * `npm run serve` does on port 8080, and reads the URL it logs.
 */
async function startService(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [pluginMain], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
    stdio: ["ignore", "inherit", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let output = "";
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"([^"]+)"/.exec(output);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    void exited.then(() => reject(new Error(`the plugin service exited:\n${output}`)));
  });
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

await run("subprocess", subprocess(process.execPath, [pluginMain]));

const service = await startService();
try {
  await run("remote", remote(service.url));
} finally {
  await service.stop();
}

await run("in-process", inProcess(greeterPlugin()));
