import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LineSplitter } from "../logging/line-splitter.js";
import { killGroup } from "../process/kill-group.js";

/** One launch of the plugin under test, with everything it wrote. */
export interface Launch {
  readonly child: ChildProcess;
  /** The private directory passed as PLUGIN_UNIX_SOCKET_DIR. */
  readonly socketDir: string;
  readonly stdoutLines: string[];
  readonly stderrLines: string[];
  /** The first stdout line, or undefined when the process exited (or timed out) first. */
  readonly firstLine: Promise<string | undefined>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves true when the process exits within `ms`. */
  exitsWithin(ms: number): Promise<boolean>;
  /** Kills the process group and removes the socket directory. */
  kill(): Promise<void>;
}

/**
 * The launches not killed yet: the CLI kills them when it is interrupted
 * (killLaunches), since a process that dies of a signal runs no finally and
 * a plugin in its own group does not get the terminal's Ctrl-C.
 */
const live = new Set<Launch>();
/** Set by killLaunches: the checks, which go on while it waits, launch nothing more. */
let ended = false;

/**
 * Kills every launch still running and removes its socket directory (5 s
 * at most each, in parallel), and refuses later launches: what `connect-plugin
 * conformance` does on SIGINT, SIGTERM or SIGHUP before it dies of the
 * signal.
 */
export async function killLaunches(): Promise<void> {
  ended = true;
  await Promise.all([...live].map((l) => l.kill()));
}

/**
 * Starts `command` as a host would, in its own process group with piped
 * stdio, with exactly `env` added to the inherited environment (minus the
 * host-side variables of a host that is itself a plugin).
 */
export function launch(
  command: readonly string[],
  env: Record<string, string>,
  options: { token?: string; firstLineTimeoutMs: number },
): Launch {
  if (ended) throw new Error("interrupted: no more launches");
  const socketDir = mkdtempSync(join(tmpdir(), "cpc-"));
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("CONNECT_PLUGIN_") && !k.startsWith("PLUGIN_"),
    ),
  );
  const [cmd, ...args] = command as [string, ...string[]];
  const child = spawn(cmd, args, {
    env: { ...inherited, PLUGIN_UNIX_SOCKET_DIR: socketDir, ...env },
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  child.stdin?.on("error", () => undefined); // a plugin that exits early closes its end
  if (options.token !== undefined) child.stdin?.write(options.token + "\n");
  const stdoutLines: string[] = [];
  const stderrLines: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", () => resolve({ code: null, signal: null }));
  });
  let resolveFirst: (line: string | undefined) => void = () => undefined;
  const firstLine = new Promise<string | undefined>((r) => (resolveFirst = r));
  const out = new LineSplitter((line) => {
    stdoutLines.push(line);
    resolveFirst(line);
  });
  const err = new LineSplitter((line) => stderrLines.push(line));
  child.stdout?.on("data", (c: Buffer) => out.push(c));
  child.stderr?.on("data", (c: Buffer) => err.push(c));
  void exited.then(() => resolveFirst(undefined));
  const timer = setTimeout(() => resolveFirst(undefined), options.firstLineTimeoutMs);
  void firstLine.then(() => clearTimeout(timer));
  const exitsWithin = async (ms: number) => {
    let t: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => (t = setTimeout(() => r(false), ms))),
    ]);
    clearTimeout(t);
    return result;
  };
  let killing: Promise<void> | undefined;
  const started: Launch = {
    child,
    socketDir,
    stdoutLines,
    stderrLines,
    firstLine,
    exited,
    exitsWithin,
    // One kill, however many ask (runConformance's finally and killLaunches
    // may both): each waits for the directory to be gone, and the launch
    // stays in `live` until then, so that killLaunches never returns (and
    // the CLI dies) while another caller's kill is still removing it.
    kill: () =>
      (killing ??= (async () => {
        try {
          if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
            // A group that refuses it (EPERM) is waited for all the same, 5 s at most.
            killGroup(child, "SIGKILL");
            await exitsWithin(5_000);
          }
          rmSync(socketDir, { recursive: true, force: true });
        } finally {
          live.delete(started);
        }
      })()),
  };
  live.add(started);
  return started;
}
