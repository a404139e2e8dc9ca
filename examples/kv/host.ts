/**
 * The smallest KV host: start the plugin as a subprocess, use it, close it.
 *
 *     node dist/examples/kv/host.js
 */
import { fileURLToPath } from "node:url";
import { PluginClient, subprocess } from "../../src/index.js";
import { KV, handshake } from "./shared.js";

const pluginMain = fileURLToPath(new URL("./plugin.js", import.meta.url));

const client = new PluginClient({
  handshake,
  plugins: { kv: KV },
  source: subprocess(process.execPath, [pluginMain]),
});
await client.start();
const kv = client.dispense("kv");
await kv.put({ key: "hello", value: new TextEncoder().encode("world") });
const { value } = await kv.get({ key: "hello" });
console.log(`hello = ${new TextDecoder().decode(value)}`);
await client.close();
