import type { PluginDefinition } from "../../src/plugin.js";
import { implement } from "../../src/plugin.js";
import { MemoryKV } from "./memory-kv.js";
import { KV, handshake } from "./shared.js";

/**
 * The KV plugin's definition: what `serve()` runs in the plugin's main file,
 * and what `inProcess()` runs inside a host.
 */
export function kvPlugin(): PluginDefinition {
  return {
    handshake,
    plugins: {
      kv: implement(KV, new MemoryKV(), { version: "1.0.0", capabilities: ["watch", "bidi"] }),
    },
  };
}
