/**
 * A throwaway PostgreSQL server for the examples, their tests and
 * benchmarks: Debian's server binaries (`initdb`, `postgres`) run directly,
 * with the data directory and the unix socket in a fresh temp directory,
 * listening on a free port on 127.0.0.1 only, trust authentication (no
 * password; loopback only). PostgreSQL refuses to run as root, so as root
 * the server runs as the `postgres` user (created by Debian's package).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

export interface PostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:PORT/postgres` */
  readonly uri: string;
  /** A URI for another database on the same server. */
  uriFor(database: string): string;
  /** Creates a database and returns its URI. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** Debian's server binaries: /usr/lib/postgresql/<major>/bin, the newest one. */
export function postgresBinDir(): string {
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((d) => existsSync(join(root, d, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors[0] === undefined) {
    throw new Error(
      "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)",
    );
  }
  return join(root, majors[0], "bin");
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

/** Starts a server and waits until it accepts connections. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), "cp-pg-"));
  const asRoot = userInfo().uid === 0;
  let uid: number | undefined;
  let gid: number | undefined;
  if (asRoot) {
    uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const ids = asRoot ? { uid, gid } : {};
  const data = join(dir, "data");
  execFileSync(
    join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
    { stdio: "pipe", ...ids, env: { ...process.env, LC_ALL: "C" } },
  );
  const port = await freePort();
  const child = spawn(
    join(bin, "postgres"),
    [
      "-D",
      data,
      "-k",
      dir,
      "-p",
      String(port),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "max_connections=200",
    ],
    { stdio: ["ignore", "ignore", "pipe"], ...ids },
  );
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) =>
      reject(new Error(`postgres exited with ${code} before accepting connections: ${stderr}`)),
    ),
  );
  // Ready when a TCP connection succeeds and pg_isready says so.
  const ready = (async () => {
    for (let i = 0; i < 600; i++) {
      try {
        execFileSync(join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-q"]);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`postgres did not accept connections within 30 s: ${stderr}`);
  })();
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  const uriFor = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  return {
    port,
    uri: uriFor("postgres"),
    uriFor,
    async createDatabase(name) {
      execFileSync(
        join(bin, "psql"),
        [
          "-h",
          "127.0.0.1",
          "-p",
          String(port),
          "-U",
          "postgres",
          "-qc",
          `CREATE DATABASE "${name}"`,
        ],
        { stdio: "pipe" },
      );
      return uriFor(name);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGINT"); // fast shutdown
        await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
