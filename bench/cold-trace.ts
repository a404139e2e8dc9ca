/**
 * Preloaded into a plugin by `node dist/bench/cold-timeline.js` (with
 * `--import`): records when the plugin reaches each step of its cold start,
 * in ms since its process began (performance.timeOrigin), and writes them as
 * JSON to $COLD_TRACE_FILE when it exits. It wraps public node:crypto, node:fs
 * and node:tls functions through createRequire before the plugin's modules
 * import them (their ESM bindings are copied from these objects when first
 * imported). The preload itself costs a few ms, which the timeline shows as
 * "preload".
 */
import type * as Crypto from "node:crypto";
import type * as Fs from "node:fs";
import { createRequire } from "node:module";
import type * as Tls from "node:tls";

const require = createRequire(import.meta.url);
const crypto = require("node:crypto") as typeof Crypto;
const fs = require("node:fs") as typeof Fs;
const tls = require("node:tls") as typeof Tls;
type Method = (this: Tls.TLSSocket, ...args: unknown[]) => boolean;

const marks: Record<string, number> = { preloaded: performance.now() };
const mark = (name: string): void => void (marks[name] ??= performance.now());

const stdin = Object.getOwnPropertyDescriptor(process, "stdin");
if (stdin?.get !== undefined) {
  const get = stdin.get.bind(process) as () => unknown;
  // serve() reads the launch token from stdin before anything else it does.
  Object.defineProperty(process, "stdin", {
    ...stdin,
    get() {
      mark("serve() reads stdin (modules loaded)");
      return get();
    },
  });
}
const keyPair = crypto.generateKeyPairSync.bind(crypto);
crypto.generateKeyPairSync = ((...args: Parameters<typeof keyPair>) => {
  mark("key generation starts");
  const out = keyPair(...args);
  mark("key generated");
  return out;
}) as typeof keyPair;
const sign = crypto.sign.bind(crypto);
crypto.sign = ((...args: Parameters<typeof sign>) => {
  const out = sign(...args);
  mark("certificate signed");
  return out;
}) as typeof sign;
const writeSync = fs.writeSync.bind(fs) as (fd: number, ...rest: unknown[]) => number;
fs.writeSync = (fd: number, ...rest: unknown[]) => {
  const out = writeSync(fd, ...rest);
  if (fd === 1) mark("handshake line written");
  return out;
};
const proto = tls.TLSSocket.prototype;
const emit = Reflect.get(proto, "emit") as Method;
let reads = 0;
Reflect.set(proto, "emit", function (this: Tls.TLSSocket, event: unknown, ...args: unknown[]) {
  if (event === "secure") mark("TLS handshake done (plugin side)");
  if (event === "data") mark(`plugin reads request bytes (${++reads})`);
  return emit.call(this, event, ...args);
} satisfies Method);
const write = Reflect.get(proto, "write") as Method;
let writes = 0;
Reflect.set(proto, "write", function (this: Tls.TLSSocket, ...args: unknown[]) {
  mark(`plugin writes response bytes (${++writes})`);
  return write.apply(this, args);
} satisfies Method);

process.once("exit", () => {
  const file = process.env.COLD_TRACE_FILE;
  if (file === undefined) return;
  const boot = performance.nodeTiming;
  writeSync(
    fs.openSync(file, "w"),
    JSON.stringify({
      timeOrigin: performance.timeOrigin,
      marks: { "node bootstrap complete": boot.bootstrapComplete, ...marks },
    }),
  );
});
