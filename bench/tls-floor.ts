/**
 * What node's TLS costs by itself, without connect-plugin:
 * `node dist/bench/tls-floor.js [ROUNDS]`. Two node processes echo 1 MiB
 * over a unix socket (one `write`; the other side collects 1 MiB and writes
 * it back), plain and over TLS 1.3 with each suite forced on both ends;
 * p50 of 300 round trips after 100, contenders in a shuffled order per
 * round. Then how many 'data' chunks carry 1 MiB to a reader, plain and
 * TLS. Prints the medians and min-max over rounds, and each contender's
 * ratio to TLS_AES_256_GCM_SHA384 (node's first choice) per round.
 *
 * `node dist/bench/tls-floor.js --small [ROUNDS] [N]`: what TLS adds to a
 * small call, node:tls beside Go's crypto/tls. Each contender is a client
 * and an echo server in two processes over a unix socket, 16-byte round
 * trips, plain or TLS 1.3 (node with our ends' options, AES-128-GCM; Go's
 * defaults, AES-128-GCM on CPUs with AES instructions): N (default 100,000)
 * timed after N/5. Prints per contender the p50 and the CPU of each
 * process per round trip (/proc/PID/stat), and per language TLS minus
 * plain, per round. TLS_FLOOR_PLACEMENT=same or split pins client and
 * server as the benchmark's pinned rows do (bench/placement.ts): what TLS
 * adds grows when each round trip wakes the other CPU (docs/local-transports.md,
 * session 24).
 */
import { fork, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { clientTlsDefaults, serverTlsDefaults } from "../src/transport/tls-defaults.js";
import { firstMatch } from "./child-output.js";
import { throwawayCert } from "./contenders.js";
import { goBuild } from "./go-build.js";
import { placementFromEnv } from "./placement.js";
import { processCpuUs } from "./proc-cpu.js";
import { MiB } from "./run-sizes.js";
import { median, shuffled } from "./stats.js";

const here = fileURLToPath(import.meta.url);
const SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/** Calls `onMessage` with each whole MiB that `socket` delivers. */
function collect(socket: net.Socket, onMessage: (message: Buffer) => void): void {
  let parts: Buffer[] = [];
  let got = 0;
  socket.on("data", (chunk: Buffer) => {
    parts.push(chunk);
    got += chunk.length;
    if (got >= MiB) {
      const message = Buffer.concat(parts, got);
      parts = [];
      got = 0;
      onMessage(message);
    }
  });
}

function listen(path: string, suite: string, pem: { cert: Buffer; key: Buffer }): net.Server {
  const serve = (socket: net.Socket): void => collect(socket, (m) => socket.write(m));
  const server =
    suite === "plain"
      ? net.createServer(serve)
      : tls.createServer({ ...pem, ciphers: suite }, serve);
  return server.listen(path);
}

/** A client of `suite` ("plain", "tls" for node's defaults, or one TLS 1.3 suite). */
function dial(path: string, suite: string, ca: Buffer): net.Socket {
  return suite === "plain"
    ? net.connect(path)
    : tls.connect({
        path,
        ca,
        servername: "localhost",
        ...(suite !== "tls" && { ciphers: suite }),
      });
}

/** p50 in µs of 1 MiB echoes against a server in a child process; rejects if either end fails. */
async function echo(suite: string, certFile: string, keyFile: string): Promise<number> {
  const path = join(tmpdir(), `tls-floor-${process.pid}.sock`);
  rmSync(path, { force: true });
  const child = fork(here, ["--server", path, suite, certFile, keyFile]);
  // Every wait below races this: a server that dies or a socket that fails
  // ends the run with the reason instead of leaving it waiting forever.
  let fail = (_error: Error): void => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});
  child.once("exit", (code, signal) =>
    fail(new Error(`${suite}: the server exited (${signal ?? `code ${code}`})`)),
  );
  const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);
  try {
    await within(once(child, "message"));
    const socket = dial(path, suite, readFileSync(certFile));
    socket.once("error", (e) => fail(new Error(`${suite}: ${e.message}`)));
    socket.once("close", () => fail(new Error(`${suite}: the connection closed`)));
    await within(once(socket, suite === "plain" ? "connect" : "secureConnect"));
    const big = Buffer.alloc(MiB, 7);
    let answered = (): void => {};
    collect(socket, () => answered());
    const times: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t = performance.now();
      await within(
        new Promise<void>((resolve) => {
          answered = resolve;
          socket.write(big);
        }),
      );
      if (i >= 100) times.push((performance.now() - t) * 1000);
    }
    socket.removeAllListeners("close");
    socket.destroy();
    return median(times);
  } finally {
    child.removeAllListeners("exit");
    child.kill();
  }
}

/** 'data' chunks per MiB (and the commonest size) that a reader gets for 20 MiB. */
async function chunks(suite: string, pem: { cert: Buffer; key: Buffer }): Promise<string> {
  const path = join(tmpdir(), `tls-floor-chunks-${process.pid}.sock`);
  rmSync(path, { force: true });
  const sizes: number[] = [];
  let done = (): void => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const count = (socket: net.Socket): void => {
    let got = 0;
    socket.on("data", (chunk: Buffer) => {
      sizes.push(chunk.length);
      got += chunk.length;
      if (got >= 20 * MiB) done();
    });
  };
  const server = suite === "plain" ? net.createServer(count) : tls.createServer({ ...pem }, count);
  server.listen(path);
  await once(server, "listening");
  const socket = dial(path, suite, pem.cert);
  socket.on("error", () => {});
  await once(socket, suite === "plain" ? "connect" : "secureConnect");
  for (let i = 0; i < 20; i++) {
    socket.write(Buffer.alloc(MiB, i));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await finished;
  socket.destroy();
  server.close();
  const bySize = new Map<number, number>();
  for (const s of sizes) bySize.set(s, (bySize.get(s) ?? 0) + 1);
  const [common, times] = [...bySize].sort((a, b) => b[1] - a[1])[0] ?? [0, 0];
  return `${(sizes.length / 20).toFixed(1)} chunks per MiB (${times} of ${sizes.length} were ${common} bytes)`;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const { dir, cert, key } = throwawayCert();
  try {
    const results = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const suite of shuffled(["plain", ...SUITES])) {
        const p50 = await echo(suite, cert, key);
        results.set(suite, [...(results.get(suite) ?? []), p50]);
        console.error(`round ${r + 1} ${suite}: ${p50.toFixed(0)} µs`);
      }
    }
    console.log(`| 1 MiB echo, p50 µs, ${rounds} rounds | median (min-max) |`);
    console.log(`| --- | --- |`);
    for (const [suite, xs] of results)
      console.log(
        `| ${suite} | ${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}) |`,
      );
    // Per round, against node's default first suite: the noise of a shared
    // machine moves whole rounds, so ratios within a round say more.
    const base = results.get("TLS_AES_256_GCM_SHA384") ?? [];
    for (const [suite, xs] of results) {
      const ratios = xs.map((x, i) => x / (base[i] ?? NaN));
      console.log(
        `${suite} ÷ TLS_AES_256_GCM_SHA384 per round: ${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}×)`,
      );
    }
    const pem = { cert: readFileSync(cert), key: readFileSync(key) };
    console.log(`\nplain: ${await chunks("plain", pem)}`);
    console.log(`TLS: ${await chunks("tls", pem)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The --small echo server: writes back every chunk as it comes; "ready" on stdout once listening. */
function pong(path: string, mode: string, certFile: string, keyFile: string): void {
  const echo = (socket: net.Socket): void => {
    socket.on("data", (chunk: Buffer) => socket.write(chunk));
    socket.on("error", () => {});
  };
  const server =
    mode === "plain"
      ? net.createServer(echo)
      : tls.createServer(
          { cert: readFileSync(certFile), key: readFileSync(keyFile), ...serverTlsDefaults() },
          echo,
        );
  server.listen(path, () => process.stdout.write("ready\n"));
}

/**
 * The --small client (as go/bench/tlsping's `call`): n/5 round trips of
 * `size` bytes, "warm" on stdout, then, after a line on stdin, n timed
 * ones; prints {"p50_us": X}.
 */
async function ping(
  path: string,
  mode: string,
  certFile: string,
  n: number,
  size: number,
): Promise<void> {
  const socket =
    mode === "plain"
      ? net.connect(path)
      : tls.connect({
          path,
          ca: readFileSync(certFile),
          servername: "localhost",
          ...clientTlsDefaults(),
        });
  await once(socket, mode === "plain" ? "connect" : "secureConnect");
  const message = Buffer.alloc(size, 7);
  let got = 0;
  let answered = (): void => {};
  socket.on("data", (chunk: Buffer) => {
    got += chunk.length;
    if (got >= size) {
      got -= size;
      answered();
    }
  });
  const roundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      answered = resolve;
      socket.write(message);
    });
  for (let i = 0; i < n / 5; i++) await roundTrip();
  process.stdout.write("warm\n");
  await once(createInterface({ input: process.stdin }), "line");
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await roundTrip();
    samples.push((performance.now() - t) * 1000);
  }
  process.stdout.write(`${JSON.stringify({ p50_us: median(samples) })}\n`);
  socket.destroy();
}

interface PingPong {
  readonly p50: number;
  /** CPU per round trip, µs, every thread of the process. */
  readonly clientUs: number;
  readonly serverUs: number;
}

/** One --small contender: `lang` node or go, `mode` plain or tls. */
async function pingPong(
  lang: string,
  mode: string,
  files: { cert: string; key: string; go: string },
  n: number,
): Promise<PingPong> {
  const path = join(tmpdir(), `tls-floor-ping-${process.pid}.sock`);
  rmSync(path, { force: true });
  const [cmd, serve, call]: [string, string[], string[]] =
    lang === "node"
      ? [process.execPath, [here, "--pong"], [here, "--ping"]]
      : [files.go, ["serve"], ["call"]];
  // Under `taskset -c` (which execs the command: the pid is the process's),
  // so that every thread it starts inherits the CPU.
  const where = placementFromEnv("TLS_FLOOR_PLACEMENT");
  const pinned = (cpu: number | undefined, args: string[]): [string, string[]] =>
    cpu === undefined ? [cmd, args] : ["taskset", ["-c", String(cpu), cmd, ...args]];
  const server = spawn(...pinned(where?.pluginCpu, [...serve, path, mode, files.cert, files.key]), {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await firstMatch(server, "stdout", /(ready)/, `${lang} ${mode} server`);
    const client = spawn(
      ...pinned(where?.hostCpu, [...call, path, mode, files.cert, String(n), "16"]),
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    const lines = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
    const exited = new Promise<never>((_, reject) =>
      client.once("exit", (code) => reject(new Error(`${lang} ${mode} client exited (${code})`))),
    );
    exited.catch(() => {});
    const next = async (): Promise<string> => {
      const line = await Promise.race([lines.next(), exited]);
      return line.done === true ? "" : line.value;
    };
    if ((await next()) !== "warm") throw new Error(`${lang} ${mode}: the client did not warm up`);
    const pid = client.pid ?? 0;
    const c0 = processCpuUs(pid);
    const s0 = processCpuUs(server.pid ?? 0);
    client.stdin.write("\n");
    const result = JSON.parse(await next()) as { p50_us: number };
    const perRoundTrip = (us: number): number => us / n;
    return {
      p50: result.p50_us,
      clientUs: perRoundTrip(processCpuUs(pid) - c0),
      serverUs: perRoundTrip(processCpuUs(server.pid ?? 0) - s0),
    };
  } finally {
    server.kill();
  }
}

async function small(rounds: number, n: number): Promise<void> {
  const { dir, cert, key } = throwawayCert();
  try {
    const go = await goBuild(dir, "./bench/tlsping", "tlsping");
    const contenders = ["node plain", "node tls", "go plain", "go tls"];
    const results = new Map<string, PingPong[]>();
    for (let r = 0; r < rounds; r++) {
      for (const c of shuffled(contenders)) {
        const [lang = "", mode = ""] = c.split(" ");
        const res = await pingPong(lang, mode, { cert, key, go }, n);
        results.set(c, [...(results.get(c) ?? []), res]);
        console.error(
          `round ${r + 1} ${c}: p50 ${res.p50.toFixed(1)} µs, CPU client ${res.clientUs.toFixed(2)} server ${res.serverUs.toFixed(2)} µs/round trip`,
        );
      }
    }
    const fmt = (xs: number[]): string =>
      `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
    const column = (c: string, f: (x: PingPong) => number): number[] =>
      (results.get(c) ?? []).map(f);
    console.log(
      `| 16 B round trip, ${rounds} rounds of ${n} | p50 µs | client CPU µs | server CPU µs |`,
    );
    console.log(`| --- | --- | --- | --- |`);
    for (const c of contenders)
      console.log(
        `| ${c} | ${fmt(column(c, (x) => x.p50))} | ${fmt(column(c, (x) => x.clientUs))} | ${fmt(column(c, (x) => x.serverUs))} |`,
      );
    for (const lang of ["node", "go"]) {
      const delta = (f: (x: PingPong) => number): number[] => {
        const plain = column(`${lang} plain`, f);
        return column(`${lang} tls`, f).map((t, i) => t - (plain[i] ?? NaN));
      };
      console.log(
        `${lang}: TLS - plain per round: p50 ${fmt(delta((x) => x.p50))}, client CPU ${fmt(delta((x) => x.clientUs))}, server CPU ${fmt(delta((x) => x.serverUs))} µs`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--pong") {
  const [path = "", mode = "", certFile = "", keyFile = ""] = process.argv.slice(3);
  pong(path, mode, certFile, keyFile);
} else if (process.argv[2] === "--ping") {
  const [path = "", mode = "", certFile = "", n = "", size = ""] = process.argv.slice(3);
  await ping(path, mode, certFile, Number(n), Number(size));
  process.exit(0);
} else if (process.argv[2] === "--small") {
  await small(Number(process.argv[3] ?? 5), Number(process.argv[4] ?? 100_000));
  process.exit(0);
} else if (process.argv[2] === "--server") {
  const [path, suite, certFile, keyFile] = process.argv.slice(3) as [
    string,
    string,
    string,
    string,
  ];
  const server = listen(path, suite, { cert: readFileSync(certFile), key: readFileSync(keyFile) });
  server.on("listening", () => process.send?.("ready"));
} else {
  await main();
  process.exit(0);
}
