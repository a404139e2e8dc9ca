/**
 * go-plugin's examples/grpc host, in TypeScript: drives any plugin of that
 * example, the unmodified Go one included.
 *
 *     node dist/examples/goplugin/kv-host.js [--auto-mtls] PLUGIN_COMMAND... -- put KEY VALUE
 *     node dist/examples/goplugin/kv-host.js ./kv-go-grpc -- get KEY
 */
import { GoPluginClient } from "../../src/index.js";
import { KV, handshake } from "./shared.js";

const argv = process.argv.slice(2);
const autoMTLS = argv[0] === "--auto-mtls";
if (autoMTLS) argv.shift();
const split = argv.indexOf("--");
const [command, ...args] = argv.slice(0, split);
const [op, key, value] = argv.slice(split + 1);
if (split < 1 || command === undefined || key === undefined) {
  console.error("usage: kv-host [--auto-mtls] PLUGIN_COMMAND [ARGS...] -- get KEY | put KEY VALUE");
  process.exit(2);
}

const client = new GoPluginClient({ handshake, plugins: { kv: KV }, command, args, autoMTLS });
try {
  await client.start();
  const kv = client.dispense("kv");
  if (op === "put") {
    await kv.put({ key, value: new TextEncoder().encode(value ?? "") });
  } else {
    const res = await kv.get({ key });
    console.log(new TextDecoder().decode(res.value));
  }
} finally {
  await client.close();
}
