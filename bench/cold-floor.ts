/**
 * Starts bench/cold-floor-server.ts, the floor of a Node plugin's cold start
 * with AutoMTLS (a bare TLS echo server), as a host starts a plugin: spawn,
 * read its line, connect over mutual TLS with a fresh certificate, send a
 * byte and wait for its echo. `npm run bench:cold` times it and counts its
 * instructions (bench/cold-instructions.ts) beside the plugin's.
 */
import { spawn } from "node:child_process";
import { build } from "esbuild";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { connect, type TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import {
  AUTO_MTLS_SERVER_NAME,
  certificateFromHandshake,
  generateAutoMtlsCertificate,
} from "../src/security/auto-mtls.js";

/** A started floor server, its echo received. */
export interface FloorStart {
  /** µs from spawn to the echo. */
  readonly wall: number;
  /** The server's CPU time to the echo, µs (its main thread, /proc/PID/schedstat). */
  readonly cpu: number;
  readonly pid: number;
  /** Stops the server; resolves when it has exited. */
  close(): Promise<void>;
}

const SERVER = fileURLToPath(new URL("./cold-floor-server.js", import.meta.url));

let bundled: Promise<string> | undefined;
/**
 * The floor server as one CommonJS file (dist/bench/cold-floor/server.cjs),
 * bundled once: Node's cheapest entry. Run as its two ES modules (the server
 * and auto-mtls.js) it executed 193.4 M instructions, 184.4 M as one ES
 * module, 170.8 M as one CommonJS file (callgrind, one run each).
 */
const floorServer = (): Promise<string> =>
  (bundled ??= (async () => {
    const outfile = join(dirname(SERVER), "cold-floor", "server.cjs");
    await build({
      entryPoints: [SERVER],
      outfile,
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      logLevel: "warning",
    });
    return outfile;
  })());

/** Starts the floor server as `[...prefix, node, server]` (a prefix: valgrind and its options). */
export async function startFloor(prefix: readonly string[] = []): Promise<FloorStart> {
  const server = await floorServer();
  const host = generateAutoMtlsCertificate("P-256");
  const t = performance.now();
  const [command = process.execPath, ...args] = [...prefix, process.execPath, server];
  const child = spawn(command, args, {
    env: { ...process.env, PLUGIN_CLIENT_CERT: host.certPem },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let socket: TLSSocket | undefined;
  let path: string | undefined;
  try {
    const line = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
    if (line.done === true) throw new Error("the floor server exited before its line");
    const [where = "", cert = ""] = line.value.split("|");
    path = where;
    const tls = connect({
      path,
      cert: host.certPem,
      key: host.keyPem,
      ca: [certificateFromHandshake(cert)],
      servername: AUTO_MTLS_SERVER_NAME,
    });
    socket = tls;
    tls.write("x");
    // A server that refuses the client's certificate closes the connection
    // (TLS 1.3: after the client's side of the handshake is done), with or
    // without an error: either way no echo comes.
    await new Promise((resolve, reject) =>
      tls
        .once("data", resolve)
        .once("error", reject)
        .once("close", () =>
          reject(new Error("the floor server closed the connection before its echo")),
        ),
    );
  } catch (error) {
    socket?.destroy();
    child.kill("SIGKILL");
    // Killed, the server does not remove its socket file.
    if (path !== undefined && path !== "") rmSync(path, { force: true });
    throw error;
  }
  const wall = (performance.now() - t) * 1_000;
  const pid = child.pid ?? NaN;
  const cpu = Number(readFileSync(`/proc/${pid}/schedstat`, "latin1").split(" ")[0]) / 1_000;
  return {
    wall,
    cpu,
    pid,
    close: async () => {
      socket?.destroy();
      child.kill("SIGTERM");
      await exited;
    },
  };
}
