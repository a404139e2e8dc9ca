/**
 * Where a 1 MiB round trip between two Node processes goes, and how fast
 * Node can move it at all: `node dist/bench/mib-floor.js [ROUNDS] [N]`.
 * A caller and an echo process (each a process of its own) exchange
 * `[u32 length][1 MiB]` frames over a unix socket, store and forward (the
 * echo reads the whole frame, then writes it back), N round trips (default
 * 300) timed after N/3; variants in a shuffled order per round. Prints each
 * variant's p50 (µs) and CPU per round trip of both processes, median and
 * min-max over rounds, and its ratio to `naive` per round.
 *
 * Variants (both ends alike):
 * - naive: the benchmark's floor ('data' events, chunks joined once the
 *   frame is whole; the caller writes the length, then the payload).
 * - fill: 'data' events, the frame's buffer allocated when its header
 *   arrives and each chunk copied in (the framed transport's FrameReader);
 *   one write of header and payload.
 * - onread-copy: `net.Socket`'s `onread` with one reusable buffer,
 *   copied into the frame's buffer (allocated per frame).
 * - onread-direct: `onread` whose buffer is, while a large frame is
 *   incomplete, the rest of that frame's own buffer: the kernel copies the
 *   payload straight into its destination (no user-space copy).
 * - onread-direct-reuse: the same, one frame buffer reused for every frame.
 * - direct-writev / direct-chunks: onread-direct, written as a corked
 *   header and payload, or in 64 KiB slices; fill-writev: fill, corked;
 *   fill-reuse-write: fill, one write from a buffer reused once the
 *   previous write completed.
 * - go: the same echo in Go (go/bench/mibecho), for reference.
 *
 * node offers `onread` to `net.connect` only, not to a server's accepted
 * sockets: the echo dials the caller, and the caller moves its accepted
 * socket's handle into a socket made with `onread` (node's internal
 * `handle` option; a bench may, the transport would not).
 * MIB_FLOOR_ONLY=naive,go picks variants; MIB_FLOOR_READ caps what one
 * read of the onread variants asks for (default 1 MiB).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { goBuild } from "./go-build.js";
import { LengthPrefixedReader } from "./length-prefixed.js";
import { processCpuUs } from "./proc-cpu.js";
import { MiB } from "./run-sizes.js";
import { median, shuffled } from "./stats.js";

const here = fileURLToPath(import.meta.url);
/** The most one read of the onread variants asks for (MIB_FLOOR_READ, default 1 MiB). */
const READ_BYTES = Number(process.env.MIB_FLOOR_READ ?? MiB);
const VARIANTS = [
  "naive",
  "fill",
  "onread-copy",
  "onread-direct",
  "onread-direct-reuse",
  "direct-writev",
  "direct-chunks",
  "fill-writev",
  "fill-reuse-write",
] as const;
type Variant = (typeof VARIANTS)[number];

/** Reads [u32 length][payload] frames from `socket` as `variant` says; calls `onFrame` with each payload. */
function readFrames(
  socket: net.Socket,
  variant: Variant,
  onFrame: (payload: Buffer) => void,
): void {
  if (variant === "naive") {
    const reader = new LengthPrefixedReader(4);
    socket.on("data", (chunk: Buffer) => reader.push(chunk, (f) => onFrame(f.subarray(4))));
    return;
  }
  if (variant === "fill" || variant === "fill-writev" || variant === "fill-reuse-write") {
    let dest: Buffer | undefined;
    let filled = 0;
    let head: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      while (chunk.length > 0) {
        if (dest === undefined) {
          head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
          if (head.length < 4) return;
          dest = Buffer.allocUnsafe(head.readUInt32BE(0));
          filled = 0;
          chunk = head.subarray(4);
          head = Buffer.alloc(0);
        }
        const n = Math.min(dest.length - filled, chunk.length);
        dest.set(chunk.subarray(0, n), filled);
        filled += n;
        chunk = chunk.subarray(n);
        if (filled === dest.length) {
          const whole = dest;
          dest = undefined;
          onFrame(whole);
        }
      }
    });
    return;
  }
  // onread: the socket was made with `onread` (see dialWith); this is its state.
  throw new Error(`${variant} reads with onread`);
}

/** The `onread` option for `variant` (the onread-* and direct-* variants), calling `onFrame` per payload. */
function onreadFor(variant: Variant, onFrame: (payload: Buffer) => void): net.OnReadOpts {
  const direct = variant !== "onread-copy";
  const scratch = Buffer.allocUnsafe(direct ? 64 * 1024 : READ_BYTES);
  let have = 0; // bytes of scratch not consumed yet, from 0
  let dest: Buffer | undefined;
  let filled = 0;
  let reused: Buffer | undefined;
  const take = (n: number): Buffer => {
    if (variant !== "onread-direct-reuse") return Buffer.allocUnsafe(n);
    if (reused === undefined || reused.length !== n) reused = Buffer.allocUnsafe(n);
    return reused;
  };
  const landed = (n: number, into: Uint8Array): void => {
    if (dest !== undefined && direct && into.buffer === dest.buffer) {
      filled += n;
    } else {
      // Into scratch at `have`: parse what is there.
      let at = 0;
      const end = have + n;
      if (dest !== undefined) {
        const k = Math.min(dest.length - filled, end);
        scratch.copy(dest, filled, 0, k);
        filled += k;
        at = k;
      }
      if (dest === undefined || filled === dest.length) {
        if (dest !== undefined) {
          const whole = dest;
          dest = undefined;
          onFrame(whole);
        }
        while (end - at >= 4) {
          const len = scratch.readUInt32BE(at);
          dest = take(len);
          const k = Math.min(len, end - at - 4);
          scratch.copy(dest, 0, at + 4, at + 4 + k);
          filled = k;
          at += 4 + k;
          if (filled < len) break;
          const whole = dest;
          dest = undefined;
          onFrame(whole);
        }
      }
      scratch.copy(scratch, 0, at, end);
      have = end - at;
      return;
    }
    if (filled === dest.length) {
      const whole = dest;
      dest = undefined;
      onFrame(whole);
    }
  };
  return {
    buffer: () =>
      dest !== undefined && direct
        ? dest.subarray(filled, filled + READ_BYTES)
        : scratch.subarray(have),
    callback: (n, buf) => {
      landed(n, buf);
      return true;
    },
  };
}

/** fill-reuse-write's buffer, back from its last write. */
let spare: Buffer | undefined;

/** Writes one frame as `variant` does. */
function writeFrame(socket: net.Socket, variant: Variant, payload: Buffer): void {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(payload.length, 0);
  if (variant === "naive") {
    socket.write(head);
    socket.write(payload);
  } else if (variant === "direct-writev" || variant === "fill-writev") {
    socket.cork();
    socket.write(head);
    socket.write(payload);
    socket.uncork();
  } else if (variant === "direct-chunks") {
    socket.write(head);
    for (let at = 0; at < payload.length; at += 64 * 1024)
      socket.write(payload.subarray(at, at + 64 * 1024));
  } else {
    const reuse = variant === "fill-reuse-write";
    let one = reuse ? spare : undefined;
    spare = undefined;
    if (one?.length !== 4 + payload.length) one = Buffer.allocUnsafe(4 + payload.length);
    head.copy(one, 0);
    payload.copy(one, 4);
    const written = one;
    socket.write(one, reuse ? () => (spare = written) : undefined);
  }
}

/** True for the variants that read with 'data' events (not `onread`). */
function dataEvents(variant: Variant): boolean {
  return (
    variant === "naive" ||
    variant === "fill" ||
    variant === "fill-writev" ||
    variant === "fill-reuse-write"
  );
}

/** A socket to `path` that reads as `variant` does. */
function dialWith(path: string, variant: Variant, onFrame: (payload: Buffer) => void): net.Socket {
  const usesOnread = !dataEvents(variant);
  const socket = usesOnread
    ? net.connect({ path, onread: onreadFor(variant, onFrame) })
    : net.connect(path);
  if (!usesOnread) readFrames(socket, variant, onFrame);
  return socket;
}

/** The echo process: dials the caller and writes every frame back. */
function echo(path: string, variant: Variant): void {
  const socket: net.Socket = dialWith(path, variant, (payload) =>
    writeFrame(socket, variant, payload),
  );
  socket.on("error", () => process.exit(0));
  socket.on("close", () => process.exit(0));
}

/** The caller: listens, n/3 round trips, "warm", a line on stdin, n timed; prints {"p50_us"}. */
async function call(path: string, variant: Variant, n: number): Promise<void> {
  const server = net.createServer().listen(path);
  await new Promise((resolve) => server.once("listening", resolve));
  process.stdout.write("listening\n");
  const accepted = await new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  let answered = (): void => {};
  const socket = wrapAccepted(accepted, variant, () => answered());
  const message = Buffer.alloc(MiB, 7);
  const roundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      answered = resolve;
      writeFrame(socket, variant, message);
    });
  for (let i = 0; i < n / 3; i++) await roundTrip();
  process.stdout.write("warm\n");
  await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await roundTrip();
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  process.stdout.write(`${JSON.stringify({ p50_us: median(samples) })}\n`);
  socket.destroy();
  server.close();
}

/**
 * The caller's end: an accepted socket offers no `onread`, so for the
 * onread variants its handle is moved into a new socket that has one
 * (node's internal `handle` option, as net.Server itself does; bench only).
 */
function wrapAccepted(accepted: net.Socket, variant: Variant, onFrame: () => void): net.Socket {
  if (dataEvents(variant)) {
    readFrames(accepted, variant, onFrame);
    return accepted;
  }
  accepted.pause();
  const handle = (accepted as unknown as { _handle: unknown })._handle;
  (accepted as unknown as { _handle: unknown })._handle = null;
  return new net.Socket({
    handle,
    onread: onreadFor(variant, onFrame),
    readable: true,
    writable: true,
  } as net.SocketConstructorOpts);
}

interface Figures {
  readonly p50: number;
  readonly callerUs: number;
  readonly echoUs: number;
}

async function one(variant: string, n: number, dir: string, goBin: string): Promise<Figures> {
  const path = join(dir, `mib-${variant}.sock`);
  rmSync(path, { force: true });
  const [cmd, callArgs, echoArgs] =
    variant === "go"
      ? [goBin, ["call", path, String(n)], ["echo", path]]
      : [
          process.execPath,
          [here, "--call", variant, path, String(n)],
          [here, "--echo", variant, path],
        ];
  const caller = spawn(cmd, callArgs, { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: caller.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const line = await lines.next();
    if (line.done === true) throw new Error(`${variant}: the caller ended early`);
    return line.value;
  };
  let echoer: ReturnType<typeof spawn> | undefined;
  try {
    if ((await next()) !== "listening") throw new Error(`${variant}: no listening`);
    echoer = spawn(cmd, echoArgs, { stdio: ["ignore", "inherit", "inherit"] });
    if ((await next()) !== "warm") throw new Error(`${variant}: no warm`);
    const c0 = processCpuUs(caller.pid ?? 0);
    const e0 = processCpuUs(echoer.pid ?? 0);
    caller.stdin?.write("\n");
    const { p50_us } = JSON.parse(await next()) as { p50_us: number };
    return {
      p50: p50_us,
      callerUs: (processCpuUs(caller.pid ?? 0) - c0) / n,
      echoUs: (processCpuUs(echoer.pid ?? 0) - e0) / n,
    };
  } finally {
    echoer?.kill();
    caller.kill();
  }
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const n = Number(process.argv[3] ?? 300);
  const only = process.env.MIB_FLOOR_ONLY?.split(",");
  const variants = [...VARIANTS, "go"].filter((v) => only === undefined || only.includes(v));
  const dir = mkdtempSync(join(tmpdir(), "mib-floor-"));
  try {
    const goBin = variants.includes("go") ? await goBuild(dir, "./bench/mibecho", "mibecho") : "";
    const results = new Map<string, Figures[]>();
    for (let r = 0; r < rounds; r++)
      for (const v of shuffled(variants)) {
        const f = await one(v, n, dir, goBin);
        results.set(v, [...(results.get(v) ?? []), f]);
        console.error(
          `round ${r + 1} ${v}: p50 ${f.p50.toFixed(0)} µs, CPU caller ${f.callerUs.toFixed(0)} echo ${f.echoUs.toFixed(0)} µs/round trip`,
        );
      }
    const fmt = (xs: number[]): string =>
      `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
    const base = (results.get("naive") ?? []).map((f) => f.p50);
    console.log(
      `| 1 MiB echo, ${rounds} rounds of ${n} | p50 µs | caller CPU µs | echo CPU µs | p50 ÷ naive |`,
    );
    console.log(`| --- | --- | --- | --- | --- |`);
    for (const v of variants) {
      const fs = results.get(v) ?? [];
      const ratios = fs.map((f, i) => f.p50 / (base[i] ?? NaN));
      console.log(
        `| ${v} | ${fmt(fs.map((f) => f.p50))} | ${fmt(fs.map((f) => f.callerUs))} | ${fmt(fs.map((f) => f.echoUs))} | ${base.length > 0 ? `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}×)` : "-"} |`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const [mode, variant = "", path = "", n = "300"] = process.argv.slice(2);
if (mode === "--echo") echo(path, variant as Variant);
else if (mode === "--call") {
  await call(path, variant as Variant, Number(n));
  process.exit(0);
} else {
  await main();
  process.exit(0);
}
