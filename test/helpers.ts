import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import type { LogRecord, Logger, PluginClientOptions, PluginSource } from "../src/index.js";
import { PluginClient, silentLogger, subprocess } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";

/** The compiled fixture plugin, started in the given mode. */
export function fixture(
  mode: string,
  env: Record<string, string> = {},
  options: Omit<Parameters<typeof subprocess>[2], "env"> = {},
) {
  const main = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url));
  return subprocess(process.execPath, [main, mode], { ...options, env });
}

/** The compiled KV example plugin. */
export const kvPluginMain = fileURLToPath(new URL("../examples/kv/plugin.js", import.meta.url));

/** A logger that keeps every record, for assertions. */
export class MemoryLogger implements Logger {
  readonly records: LogRecord[] = [];
  log(record: LogRecord): void {
    this.records.push(record);
  }
  messages(source?: LogRecord["source"]): string[] {
    return this.records
      .filter((r) => source === undefined || r.source === source)
      .map((r) => r.message);
  }
}

/** Polls `check` until it returns true, failing after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True while a process with this pid exists (and is not a zombie we own). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` runs: alive and not a zombie (a PID 1 that does not reap orphans would keep one). */
export function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

export const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
export const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Resolves with how long `promise` took to settle, and how it settled. */
export async function timed<T>(
  promise: Promise<T>,
): Promise<{ ms: number; value?: T; error?: unknown }> {
  const start = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

/**
 * Starts the fixture plugin as a network service on a free loopback port
 * (CONNECT_PLUGIN_LISTEN=127.0.0.1:0) and returns its URL.
 */
export async function startNetworkPlugin(
  mode = "kv",
  env: Record<string, string> = {},
  main = fileURLToPath(new URL("./fixtures/fixture-plugin.js", import.meta.url)),
): Promise<{ url: string; child: ChildProcess; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, mode === "" ? [main] : [main, mode], {
    env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await servingUrl(child, "network plugin");
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return {
    url,
    child,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * The URL in a network-mode plugin's "plugin serving" log line on stderr;
 * rejects with the stderr so far if the process exits first.
 */
export function servingUrl(child: ChildProcess, what: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"url":"([^"]+)"/.exec(buffered);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`${what} exited with ${code}: ${buffered}`)));
  });
}

/** True when the etcd member at `clientUrl` says it is healthy. */
export async function etcdHealthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`);
    return ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

/**
 * A host for the KV plugin at `source`, quiet unless given a logger. Other
 * options pass through.
 */
export function kvClient(
  source: PluginSource,
  options: Partial<Omit<PluginClientOptions<{ kv: typeof KV }, never>, "source" | "plugins">> = {},
): PluginClient<{ kv: typeof KV }> {
  return new PluginClient({
    handshake,
    plugins: { kv: KV },
    logger: silentLogger,
    ...options,
    source,
  });
}

/** An assert.rejects() check: Code.Unavailable with a message matching `pattern`. */
export function expectUnavailable(pattern: RegExp) {
  return (e: unknown): boolean => {
    const ce = ConnectError.from(e);
    assert.equal(ce.code, Code.Unavailable, `expected Unavailable, got ${ce.message}`);
    assert.match(ce.rawMessage, pattern);
    return true;
  };
}

const tempDirs: string[] = [];
process.once("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory under the OS temp dir, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/**
 * A private PKI made by openssl in a fresh temporary directory: `ca.crt`/`ca.key`,
 * `server.crt`/`server.key` (SAN 127.0.0.1 and localhost, serverAuth) and
 * `client.crt`/`client.key` (clientAuth), all P-256, valid for two days.
 * Returns the directory.
 */
export function makeTestPki(prefix: string): string {
  const dir = tempDir(prefix);
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: "ignore" });
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.crt"),
    "-subj",
    "/CN=test-ca",
    "-days",
    "2",
  );
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const) {
    writeFileSync(file(`${name}.ext`), `${ext}\n`);
    openssl(
      "req",
      ...ec,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
      "-subj",
      `/CN=${name}`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      file(`${name}.csr`),
      "-CA",
      file("ca.crt"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-out",
      file(`${name}.crt`),
      "-days",
      "2",
      "-extfile",
      file(`${name}.ext`),
    );
  }
  return dir;
}

/**
 * A certificate for a fresh P-256 key that `issuer`'s key signed (openssl),
 * PEM: one that chains to an AutoMTLS certificate (go-plugin makes those
 * CAs), so verifying with that certificate as the CA would accept it.
 */
export function signedBy(issuer: { certPem: string; keyPem: string }): {
  certPem: string;
  keyPem: string;
} {
  const dir = tempDir("cpsb-");
  writeFileSync(join(dir, "issuer.crt"), issuer.certPem);
  writeFileSync(join(dir, "issuer.key"), issuer.keyPem);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const openssl = (...args: string[]): string =>
    execFileSync("openssl", args, { cwd: dir, encoding: "utf8" });
  openssl("req", "-new", ...ec, "-keyout", "c.key", "-out", "c.csr", "-subj", "/CN=localhost");
  openssl(
    "x509",
    "-req",
    "-in",
    "c.csr",
    "-CA",
    "issuer.crt",
    "-CAkey",
    "issuer.key",
    "-CAcreateserial",
    "-out",
    "c.crt",
    "-days",
    "1",
  );
  return {
    certPem: readFileSync(join(dir, "c.crt"), "utf8"),
    keyPem: readFileSync(join(dir, "c.key"), "utf8"),
  };
}

/**
 * A self-signed RSA-2048 certificate for `subject`, valid for a day, made by
 * openssl as `name.crt` and `name.key` in `dir`; `extensions` are openssl
 * `-addext` values (e.g. a subjectAltName).
 */
export function selfSignedCert(
  dir: string,
  name: string,
  subject: string,
  extensions: string[] = [],
): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      subject,
      ...extensions.flatMap((e) => ["-addext", e]),
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    { stdio: "ignore" },
  );
  return { certFile, keyFile };
}

/** The first line a child writes to its stdout (a debug-mode plugin's reattach line). */
export function firstStdoutLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once("exit", (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}
