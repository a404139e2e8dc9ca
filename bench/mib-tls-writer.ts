/**
 * What the framed writer costs per 1 MiB frame over TLS, builds side by
 * side: `node dist/bench/mib-tls-writer.js [ROUNDS] [N] [ROOT...]` (ROOT: a
 * dist folder; default this one). Each measurement is a child process of
 * ROOT's code: a TLS connection over a unix socket (AutoMTLS certificates,
 * our ends' TLS options), a FrameWriter on one end and a FrameReader on
 * the other, decoding each message; N sequential 1 MiB messages (default
 * 300, after N/3 unmeasured), each written once the one before was read.
 * Two messages: `toBinary`, an Option whose Any holds the bytes (not flat:
 * encoded by toBinary and framed by frame()), and `flat`, a BytesValue
 * (written by FlatEncoder straight into the frame). Prints, per message and
 * ROOT, the process's CPU per frame (both ends; GC threads included) and the p50 of
 * a frame's write-to-decoded time: median and min-max over ROUNDS rounds,
 * ROOTs in a shuffled order per round.
 */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import * as tls from "node:tls";
import type * as Protobuf from "@bufbuild/protobuf";
import type * as Wkt from "@bufbuild/protobuf/wkt";
import type * as Frames from "../src/transport/framed/frames.js";
import type * as Encode from "../src/transport/framed/encode.js";
import type * as AutoMtls from "../src/security/auto-mtls.js";
import type * as TlsDefaults from "../src/transport/tls-defaults.js";
import { MiB } from "./run-sizes.js";
import { median, percentile, shuffled } from "./stats.js";

const here = fileURLToPath(import.meta.url);
const ownRoot = resolve(here, "../..");
const MESSAGES = ["toBinary", "flat"] as const;
type Kind = (typeof MESSAGES)[number];

/**
 * A child's entry, run with `--input-type=module -e` in ROOT's package
 * folder: protobuf-es is imported as ROOT's code imports it (the package's
 * public exports, resolved from there; an eval'd module resolves from the
 * working directory), one instance per build, as in an application.
 * Arguments (after `--`): `--child`, this file's URL, ROOT, kind, n.
 */
const CHILD_ENTRY = `
const protobuf = await import("@bufbuild/protobuf");
const wkt = await import("@bufbuild/protobuf/wkt");
const [, , bench, root, kind, n] = process.argv;
await (await import(bench)).child(root, kind, Number(n), protobuf, wkt);
process.exit(0);
`;

/** One measurement in this process: ROOT's writer and reader, `n` frames of `kind`. */
export async function child(
  root: string,
  kind: Kind,
  n: number,
  { create, fromBinary }: typeof Protobuf,
  { BytesValueSchema, OptionSchema }: typeof Wkt,
): Promise<void> {
  const load = <T>(path: string): Promise<T> =>
    import(pathToFileURL(join(root, "src", path)).href) as Promise<T>;
  const { FrameReader, FrameType, FrameWriter } = await load<typeof Frames>(
    "transport/framed/frames.js",
  );
  const { MessageEncoder } = await load<typeof Encode>("transport/framed/encode.js");
  const { generateAutoMtlsCertificate } = await load<typeof AutoMtls>("security/auto-mtls.js");
  const { clientTlsDefaults, serverTlsDefaults } = await load<typeof TlsDefaults>(
    "transport/tls-defaults.js",
  );
  const dir = mkdtempSync(join(tmpdir(), "mib-tls-writer-"));
  const server = generateAutoMtlsCertificate("P-256");
  const client = generateAutoMtlsCertificate("P-256");
  const listener = tls
    .createServer({
      ...serverTlsDefaults(),
      cert: server.certPem,
      key: server.keyPem,
      ca: client.certPem,
      requestCert: true,
    })
    .listen(join(dir, "s.sock"));
  await once(listener, "listening");
  const accepted = once(listener, "secureConnection") as Promise<[tls.TLSSocket]>;
  const ours = tls.connect({
    ...clientTlsDefaults(),
    path: join(dir, "s.sock"),
    cert: client.certPem,
    key: client.keyPem,
    ca: server.certPem,
    servername: "localhost",
  });
  await once(ours, "secureConnect");
  const [peer] = await accepted;
  const schema: Protobuf.DescMessage = kind === "flat" ? BytesValueSchema : OptionSchema;
  const bytes = new Uint8Array(MiB).fill(7);
  const message =
    kind === "flat"
      ? create(BytesValueSchema, { value: bytes })
      : create(OptionSchema, { name: "x", value: { typeUrl: "t", value: bytes } });
  let done: (() => void) | undefined;
  const reader = new FrameReader((_type, _id, payload) => {
    fromBinary(schema, payload);
    done?.();
  });
  peer.on("data", (chunk: Buffer) => reader.push(chunk));
  const writer = new FrameWriter(ours);
  const encoder = new MessageEncoder();
  const times: number[] = [];
  const one = async (): Promise<void> => {
    const read = new Promise<void>((r) => (done = r));
    const t = performance.now();
    encoder.measure(schema, message, Infinity);
    encoder.send(writer, FrameType.message, 1);
    await read;
    times.push((performance.now() - t) * 1_000);
  };
  for (let i = 0; i < Math.ceil(n / 3); i++) await one();
  times.length = 0;
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) await one();
  const used = process.cpuUsage(cpu);
  process.stdout.write(
    JSON.stringify({ cpu: (used.user + used.system) / n, p50: percentile(times, 50) }),
  );
  ours.destroy();
  peer.destroy();
  listener.close();
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const n = Number(process.argv[3] ?? 300);
  const roots = process.argv.length > 4 ? process.argv.slice(4).map((r) => resolve(r)) : [ownRoot];
  const results = new Map<string, { cpu: number[]; p50: number[] }>();
  for (let r = 0; r < rounds; r++)
    for (const kind of MESSAGES)
      for (const root of shuffled(roots)) {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            CHILD_ENTRY,
            "--",
            "--child",
            import.meta.url,
            root,
            kind,
            String(n),
          ],
          { cwd: join(root, "..") },
        );
        const got = JSON.parse(stdout) as { cpu: number; p50: number };
        const key = `${kind} ${root}`;
        const entry = results.get(key) ?? { cpu: [], p50: [] };
        entry.cpu.push(got.cpu);
        entry.p50.push(got.p50);
        results.set(key, entry);
        console.error(
          `round ${r + 1} ${key}: ${got.cpu.toFixed(0)} µs CPU, p50 ${got.p50.toFixed(0)} µs`,
        );
      }
  const fmt = (xs: number[]): string =>
    `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
  console.log(`| 1 MiB frame over TLS, ${rounds} rounds of ${n} | CPU µs per frame | p50 µs |`);
  console.log(`| --- | --- | --- |`);
  for (const [key, { cpu, p50 }] of results) console.log(`| ${key} | ${fmt(cpu)} | ${fmt(p50)} |`);
}

// A child (CHILD_ENTRY) imports this file for child() only.
if (process.argv[1] !== "--child") await main();
