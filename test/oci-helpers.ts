/**
 * Real parts for the plugin-management tests: Debian's docker-registry on a
 * loopback port (no auth, htpasswd, or the token flow with a token server
 * run here), a fault-injecting HTTP proxy in front of it, the packaged KV
 * plugin, and a runner for the connect-plugin CLI.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID, sign, X509Certificate, createPrivateKey } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { packageKvPlugin } from "../examples/kv/package-plugin.js";
import { generateKeyPair, type KeyPair } from "../src/security/signing.js";
import { selfSignedCert, tempDir, waitFor } from "./helpers.js";

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export interface Registry {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly dataDir: string;
  /** Token requests the token server saw (token auth only). */
  readonly tokenRequests: string[];
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** Starts docker-registry with filesystem storage in a temp dir. */
export async function startRegistry(
  auth: "none" | "basic" | "token" = "none",
  user = { name: "ada", password: "s3cret" },
): Promise<Registry> {
  const dir = tempDir("cp-registry-");
  const port = await freePort();
  const tokenRequests: string[] = [];
  let authYaml = "";
  let tokenServer: http.Server | undefined;
  if (auth === "basic") {
    const line = execFileSync("htpasswd", ["-Bbn", user.name, user.password], { encoding: "utf8" });
    writeFileSync(join(dir, "htpasswd"), line);
    authYaml = `auth:\n  htpasswd:\n    realm: test-realm\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (auth === "token") {
    selfSignedCert(dir, "token", "/CN=test-token-issuer");
    const key = createPrivateKey(readFileSync(join(dir, "token.key")));
    const certDer = new X509Certificate(readFileSync(join(dir, "token.crt"))).raw.toString(
      "base64",
    );
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    tokenServer = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      tokenRequests.push(url.search);
      const expected = `Basic ${Buffer.from(`${user.name}:${user.password}`).toString("base64")}`;
      if (req.headers.authorization !== expected) {
        res
          .writeHead(401, { "content-type": "application/json" })
          .end('{"details":"bad credentials"}');
        return;
      }
      const scope = url.searchParams.get("scope") ?? "";
      const [type, name, actions] = scope.split(":");
      const now = Math.floor(Date.now() / 1000);
      const header = b64({ alg: "RS256", typ: "JWT", x5c: [certDer] });
      const claims = b64({
        iss: "test-issuer",
        sub: user.name,
        aud: "test-registry",
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomUUID(),
        access:
          type === undefined || name === undefined
            ? []
            : [{ type, name, actions: (actions ?? "").split(",") }],
      });
      const signature = sign("sha256", Buffer.from(`${header}.${claims}`), key).toString(
        "base64url",
      );
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ token: `${header}.${claims}.${signature}` }));
    });
    await new Promise<void>((r) => tokenServer?.listen(0, "127.0.0.1", r));
    const tokenPort = (tokenServer.address() as AddressInfo).port;
    authYaml =
      `auth:\n  token:\n    realm: http://127.0.0.1:${tokenPort}/token\n    service: test-registry\n` +
      `    issuer: test-issuer\n    rootcertbundle: ${join(dir, "token.crt")}\n`;
  }
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\n` +
      `http:\n  addr: 127.0.0.1:${port}\n  secret: test-secret\n${authYaml}`,
  );
  const child = spawn("/usr/bin/docker-registry", ["serve", join(dir, "config.yml")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  await waitFor(
    `docker-registry on port ${port} (stderr: ${stderr})`,
    async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        await res.arrayBuffer();
        return res.status === 200 || res.status === 401;
      } catch {
        return false;
      }
    },
    15_000,
  );
  return {
    host: `127.0.0.1:${port}`,
    dataDir: join(dir, "data"),
    tokenRequests,
    stop: async () => {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
      children.delete(child);
      await new Promise((r) => (tokenServer === undefined ? r(undefined) : tokenServer.close(r)));
    },
  };
}

/** What the proxy does to one request; undefined passes it through. */
export type Fault = "corrupt" | "truncate" | 401 | 404 | 500 | undefined;

/**
 * An HTTP proxy in front of a real registry that can break responses:
 * corrupt a body (same length, one byte flipped), cut it off halfway
 * (Content-Length says more; the socket is destroyed), or answer 401, 404
 * or 500 itself.
 */
export async function startFaultProxy(
  upstream: string,
  decide: (req: http.IncomingMessage) => Fault,
): Promise<{ host: string; requests: string[]; stop: () => Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests.push(`${req.method} ${req.url}`);
      const fault = decide(req);
      if (typeof fault === "number") {
        res.writeHead(fault, {
          "content-type": "application/json",
          ...(fault === 401 && { "www-authenticate": 'Basic realm="proxy"' }),
        });
        res.end(JSON.stringify({ errors: [{ code: "INJECTED", message: `injected ${fault}` }] }));
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === "string" && k !== "host") headers[k] = v;
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      void fetch(`http://${upstream}${req.url}`, {
        method: req.method,
        headers,
        ...(body !== undefined && { body }),
        redirect: "manual",
      })
        .then(async (up) => {
          const data = Buffer.from(await up.arrayBuffer());
          const out: Record<string, string> = {};
          up.headers.forEach((v, k) => {
            if (k !== "content-length" && k !== "transfer-encoding" && k !== "connection")
              out[k] = v;
          });
          if (out.location?.startsWith(`http://${upstream}`))
            out.location = out.location.replace(upstream, req.headers.host ?? "");
          if (fault === "corrupt" && data.length > 0)
            data[data.length >> 1] = (data[data.length >> 1] as number) ^ 0xff;
          res.writeHead(up.status, { ...out, "content-length": String(data.length) });
          if (fault === "truncate" && req.method === "GET") {
            res.write(data.subarray(0, data.length >> 1), () => res.destroy());
            return;
          }
          res.end(req.method === "HEAD" ? undefined : data);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let kvBundle: string | undefined;

/** A fresh copy of the packaged KV plugin (unsigned), bundled once per test file. */
export async function kvPluginDir(): Promise<string> {
  if (kvBundle === undefined) {
    kvBundle = join(tempDir("cp-kvbundle-"), "kv");
    await packageKvPlugin(kvBundle);
  }
  const dir = join(tempDir("cp-kv-"), "kv");
  cpSync(kvBundle, dir, { recursive: true });
  return dir;
}

/** A key pair on disk, with its public key alone in a trusted-keys directory. */
export function keysOnDisk(): KeyPair & { privateKeyFile: string; trustedDir: string } {
  const pair = generateKeyPair();
  const dir = tempDir("cp-keys-");
  const trustedDir = join(dir, "trusted");
  mkdirSync(trustedDir);
  writeFileSync(join(dir, "signing.key"), pair.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(trustedDir, "signing.pub"), pair.publicKeyPem);
  return { ...pair, privateKeyFile: join(dir, "signing.key"), trustedDir };
}

const cliMain = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/** Runs the connect-plugin CLI as a real subprocess (stdio are pipes, not a TTY). */
export function cli(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliMain, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      ...(cwd !== undefined && { cwd }),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Starts the CLI as a real subprocess to be signalled: stderr (read with
 * `stderr()`) is a pipe, stdin and stdout are not read; `exited` is its
 * exit code and signal.
 */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): {
  child: ChildProcess;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  stderr: () => string;
} {
  const child = spawn(process.execPath, [cliMain, ...args], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) =>
    child.once("exit", (code, signal) => r([code, signal])),
  );
  return { child, exited, stderr: () => stderr };
}

/**
 * A fresh host directory and the CLI flags that point into it: plugins, cache,
 * lockfile, and trusted keys (`trustedDir`, else an empty folder in the host).
 */
export function cliHost(trustedDir?: string): {
  host: string;
  pluginsDir: string;
  flags: string[];
} {
  const host = tempDir("cp-clihost-");
  const pluginsDir = join(host, "plugins");
  const flags = [
    "--dir",
    pluginsDir,
    "--cache",
    join(host, "cache"),
    "--lockfile",
    join(host, "lock.json"),
    "--trusted-keys",
    trustedDir ?? join(host, "trusted-keys"),
  ];
  return { host, pluginsDir, flags };
}

/** Signs a plugin directory with `keys` and installs it with the CLI; returns the plugins directory. */
export async function signAndInstall(
  pluginDir: string,
  keys: ReturnType<typeof keysOnDisk>,
): Promise<string> {
  const signed = await cli(["sign", pluginDir, "--key", keys.privateKeyFile]);
  if (signed.code !== 0) throw new Error(`sign failed: ${signed.stderr}`);
  const pluginsDir = join(tempDir("cp-host-"), "plugins");
  const installed = await cli([
    "--dir",
    pluginsDir,
    "--trusted-keys",
    keys.trustedDir,
    "install",
    pluginDir,
  ]);
  if (installed.code !== 0) throw new Error(`install failed: ${installed.stderr}`);
  return pluginsDir;
}
