/** What the go-plugin interop test files share: tracked clients and a GoPluginClient of the KV service. */
import { after } from "node:test";
import { GoPluginClient, type HandshakeConfig, type Logger } from "../src/index.js";
import { KV, handshake } from "../examples/goplugin/shared.js";
import { MemoryLogger } from "./helpers.js";

/** Every client a test file makes, closed after the file even when a test fails. */
const clients: Array<{ close(): Promise<void> }> = [];
after(() => Promise.all(clients.map((c) => c.close())));

/** Closes `client` after the test file. */
export function track<C extends { close(): Promise<void> }>(client: C): C {
  clients.push(client);
  return client;
}

/** The launch options the tests vary; the rest is GoPluginClient's default. */
export interface KvGoClientOptions {
  readonly command: string;
  readonly args?: string[];
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  readonly autoMTLS?: boolean;
  readonly gracePeriodMs?: number;
  /** Defaults to examples/goplugin's handshake. */
  readonly handshake?: HandshakeConfig;
  /** Defaults to a new MemoryLogger (nothing printed). */
  readonly logger?: Logger;
}

/** A tracked GoPluginClient that dispenses go-plugin's examples/grpc KV service as "kv". */
export function kvGoClient(options: KvGoClientOptions): GoPluginClient<{ kv: typeof KV }> {
  return track(
    new GoPluginClient({ handshake, logger: new MemoryLogger(), ...options, plugins: { kv: KV } }),
  );
}
