/**
 * What the soak drives: the bench echo service through each transport a host
 * uses (in-process, framed on a unix socket with AutoMTLS, Connect over
 * HTTP/2 on a unix socket with AutoMTLS, go-plugin's gRPC protocol to a Go
 * plugin), and the plugins it starts and stops again and again (the Go KV
 * plugin that speaks connect-plugin's protocol, and the Node bench plugin).
 */
import {
  PluginClient,
  inProcess,
  silentLogger,
  subprocess,
  type LocalTransport,
} from "../src/index.js";
import { KV, handshake as kvHandshake } from "../examples/kv/shared.js";
import { benchPluginMain, openPlugin } from "../bench/contenders.js";
import { startGoBenchPlugin } from "../bench/interop.js";
import { benchPlugin } from "../bench/service.js";

/** One transport under soak: an echo that returns what it was given. */
export interface Target {
  readonly name: string;
  echo(payload: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

export const TRANSPORTS = ["in-process", "framed", "http2", "go-plugin"] as const;
export type TransportName = (typeof TRANSPORTS)[number];

export async function openTarget(name: TransportName, goBenchPlugin: string): Promise<Target> {
  const transports: LocalTransport[] | undefined =
    name === "framed" ? ["framed"] : name === "http2" ? ["connect"] : undefined;
  const client =
    name === "go-plugin"
      ? await startGoBenchPlugin(goBenchPlugin)
      : await openPlugin(
          name === "in-process"
            ? inProcess(benchPlugin())
            : subprocess(process.execPath, [benchPluginMain], { transports }),
        );
  const bench = client.dispense("bench");
  return {
    name,
    echo: async (value) => (await bench.echo({ value })).value,
    close: () => client.close(),
  };
}

/** A plugin kind that the cycle phase starts, calls once and stops. */
export const CYCLE_KINDS = ["go", "node"] as const;
export type CycleKind = (typeof CYCLE_KINDS)[number];

/**
 * One start / call / stop cycle. `go` is go/cmd/kv-plugin-connect (a Go
 * plugin on connect-plugin's protocol: the host's launcher, AutoMTLS and
 * HTTP/2 paths, at Go's start-up cost); `node` the bench plugin on the
 * default transport (framed, AutoMTLS).
 */
export async function cycle(kind: CycleKind, goKvPlugin: string, i: number): Promise<void> {
  if (kind === "go") {
    const client = new PluginClient({
      handshake: kvHandshake,
      plugins: { kv: KV },
      source: subprocess(goKvPlugin, []),
      logger: silentLogger,
    });
    try {
      await client.start();
      const value = `v${i}`;
      await client.dispense("kv").put({ key: "soak", value: new TextEncoder().encode(value) });
      const got = new TextDecoder().decode(
        (await client.dispense("kv").get({ key: "soak" })).value,
      );
      // The Go KV plugin stores what it is given behind "go:".
      if (got !== `go:${value}`)
        throw new Error(`cycle ${i}: got "${got}" back, not "go:${value}"`);
    } finally {
      await client.close();
    }
    return;
  }
  const client = await openPlugin(subprocess(process.execPath, [benchPluginMain]));
  await client.close();
}
