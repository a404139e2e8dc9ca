/**
 * The two go-plugin interoperability rows: a connect-plugin host driving the
 * Go go-plugin bench plugin (GoPluginClient), and go-plugin's Go host
 * driving the connect-plugin bench plugin (a TypeScript plugin under a Go
 * host). Both speak go-plugin's gRPC protocol over a unix socket, without
 * AutoMTLS (go-plugin's default), so they compare with the Go-to-Go anchor.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GoPluginClient, silentLogger } from "../src/index.js";
import {
  GoPluginHost,
  benchPluginMain,
  connectOps,
  fromOps,
  type Contender,
  type HostProcess,
} from "./contenders.js";
import type { Placement } from "./placement.js";
import { Bench, benchHandshake } from "./service.js";

/** A started GoPluginClient for go-plugin's Go bench plugin (the bench's and the soak's). */
export async function startGoBenchPlugin(goPlugin: string) {
  const client = new GoPluginClient({
    handshake: benchHandshake,
    plugins: { bench: Bench },
    command: goPlugin,
    logger: silentLogger,
  });
  await client.start();
  return client;
}

/** connect-plugin's GoPluginClient with go-plugin's Go bench plugin. */
export async function connectHostGoPlugin(name: string, goPlugin: string): Promise<Contender> {
  const client = await startGoBenchPlugin(goPlugin);
  const bench = client.dispense("bench");
  await bench.echo({ value: new Uint8Array(1) });
  return fromOps(
    name,
    connectOps(bench),
    () => client.close(),
    () => client.pid,
  );
}

/**
 * go-plugin's Go host with the connect-plugin bench plugin. The Go host runs
 * one executable without arguments, as go-plugin's exec.Command does, so a
 * two-line shell script starts Node with the plugin (`exec`, so the plugin
 * keeps the script's pid and is the host's child).
 */
export function goHostConnectPlugin(
  name: string,
  goHost: string,
  placement?: Placement,
): Promise<HostProcess> {
  const dir = mkdtempSync(join(tmpdir(), "cpb-interop-"));
  const script = join(dir, "bench-plugin");
  writeFileSync(script, `#!/bin/sh\nexec "${process.execPath}" "${benchPluginMain}"\n`);
  chmodSync(script, 0o755);
  return GoPluginHost.start(name, goHost, script, false, placement, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
}
