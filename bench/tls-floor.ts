/**
 * What node's TLS costs by itself, without connect-plugin:
 * `node dist/bench/tls-floor.js [ROUNDS]`. Two node processes echo 1 MiB
 * over a unix socket (one `write`; the other side collects 1 MiB and writes
 * it back), plain and over TLS 1.3 with each suite forced on both ends;
 * p50 of 300 round trips after 100, contenders in a shuffled order per
 * round. Then how many 'data' chunks carry 1 MiB to a reader, plain and
 * TLS. Prints the medians and min-max over rounds, and each contender's
 * ratio to TLS_AES_256_GCM_SHA384 (node's first choice) per round.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { throwawayCert } from "./contenders.js";
import { median, shuffled } from "./stats.js";

const MIB = 1024 * 1024;
const here = fileURLToPath(import.meta.url);
const SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/** Calls `onMessage` with each whole MiB that `socket` delivers. */
function collect(socket: net.Socket, onMessage: (message: Buffer) => void): void {
  let parts: Buffer[] = [];
  let got = 0;
  socket.on("data", (chunk: Buffer) => {
    parts.push(chunk);
    got += chunk.length;
    if (got >= MIB) {
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
    const big = Buffer.alloc(MIB, 7);
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
      if (got >= 20 * MIB) done();
    });
  };
  const server = suite === "plain" ? net.createServer(count) : tls.createServer({ ...pem }, count);
  server.listen(path);
  await once(server, "listening");
  const socket = dial(path, suite, pem.cert);
  socket.on("error", () => {});
  await once(socket, suite === "plain" ? "connect" : "secureConnect");
  for (let i = 0; i < 20; i++) {
    socket.write(Buffer.alloc(MIB, i));
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

if (process.argv[2] === "--server") {
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
