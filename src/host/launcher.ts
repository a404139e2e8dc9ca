import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_LOCAL_TRANSPORTS, Env } from "../protocol/env.js";
import { PluginError } from "../protocol/errors.js";
import { parseHandshakeLine, type HandshakeLine } from "../protocol/handshake-line.js";
import type { HandshakeConfig } from "../protocol/plugin-set.js";
import { hostRecord, notifyListeners, type Logger, type LogRecord } from "../logging/logger.js";
import { OutputBudget } from "../logging/output-budget.js";
import { exceededLimit, limitedCommand, type ResourceLimits } from "./resource-limits.js";
import { LineSplitter, TailBuffer } from "../logging/line-splitter.js";
import { parsePluginLine } from "../logging/plugin-output.js";
import { killGroup } from "../process/kill-group.js";

/** How and why a plugin process ended. */
export interface PluginExit {
  /** Exit code, or null when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when the host asked the plugin to stop (close()); false for a crash. */
  readonly expected: boolean;
  /** One sentence for people: "exited with code 1", "killed by SIGKILL". */
  readonly description: string;
  /** The last lines the plugin wrote to stderr. */
  readonly stderrTail: string;
  /** The resource limit it ran into, in words ("its CPU time limit of 2 s"), if any. */
  readonly exceeded?: string;
}

export interface LaunchOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly handshake: HandshakeConfig;
  /** Versions the host speaks, sent in PLUGIN_PROTOCOL_VERSIONS. */
  readonly hostVersions: readonly number[];
  readonly startTimeoutMs: number;
  readonly logger: Logger;
  /** The plugin's name in log records. */
  readonly name: string;
  /** The plugin's name in error messages (quoted). */
  readonly label: string;
  /** Secret the plugin will require on every call (see Env.launchToken). */
  readonly launchToken: string;
  /** Aborting it kills the plugin and fails the launch (close() during start()). */
  readonly signal?: AbortSignal;
  /**
   * Launch as a go-plugin host does: only go-plugin's variables, no
   * CONNECT_PLUGIN_* ones and no launch token on stdin (see goplugin-client.ts).
   */
  readonly goPlugin?: boolean;
  /** Wire protocols offered in CONNECT_PLUGIN_TRANSPORTS, best first. */
  readonly transports?: readonly string[];
  /** Turns a stderr line into a log record (default: JSON or plain at info). */
  readonly stderrRecord?: (line: string) => LogRecord;
  /** OS limits on memory, CPU time and open files (see resource-limits.ts). */
  readonly limits?: ResourceLimits;
}

type RawExit = Omit<PluginExit, "expected"> & { exitedAt: number };

/** Phrases that go-plugin's and our serve() print when the cookie is wrong. */
const COOKIE_MARKERS = ["not meant to be executed directly", "magic cookie"];

/** Every plugin process still running, with the socket directory made for it. */
const children = new Map<ChildProcess, string>();
let exitHookInstalled = false;

/**
 * A plugin subprocess that has completed its handshake.
 *
 * The process runs in its own process group, so that stopping it also stops
 * anything it started (a shell wrapper's children, for example). Its stdout
 * and stderr are read continuously, line by line, so that a plugin that
 * writes a lot can never block on a full pipe; every line goes to the logger.
 * The host holds the write end of its stdin: when the host dies, even by
 * SIGKILL, the plugin reads end-of-file and exits.
 */
export class PluginProcess {
  private exitInfo: PluginExit | undefined;
  /** When the host started stopping the plugin (ms since epoch). */
  private stoppingSince: number | undefined;
  private readonly exitListeners = new Set<(exit: PluginExit) => void>();
  /** Resolves when the process has exited. Never rejects. */
  readonly exited: Promise<PluginExit>;

  private constructor(
    private readonly child: ChildProcess,
    readonly handshakeLine: HandshakeLine,
    private readonly stderr: TailBuffer,
    exited: Promise<RawExit>,
    private readonly logger: Logger,
    private readonly name: string,
  ) {
    this.exited = exited.then((raw) => {
      const { exitedAt, ...exit } = raw;
      // Expected only if the host asked before the process died: a crash
      // just before close() is still a crash.
      const expected = this.stoppingSince !== undefined && this.stoppingSince <= exitedAt;
      const final: PluginExit = { ...exit, expected };
      this.exitInfo = final;
      // Whatever the plugin left running in its group goes with it.
      killGroup(child, "SIGKILL");
      notifyListeners(this.exitListeners, final, this.logger, this.name);
      return final;
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** How the process ended, once it has. */
  get exit(): PluginExit | undefined {
    return this.exitInfo;
  }

  get stderrTail(): string {
    return this.stderr.toString();
  }

  onExit(listener: (exit: PluginExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Marks the coming exit as requested by the host. */
  markStopping(): void {
    this.stoppingSince ??= Date.now();
  }

  /**
   * Kills the plugin's whole process group as a requested stop, and resolves
   * once it has exited (or after `waitMs` if it cannot be reaped).
   */
  async kill(waitMs = 5_000): Promise<PluginExit | undefined> {
    this.markStopping();
    killGroup(this.child, "SIGKILL");
    return this.exitWithin(waitMs);
  }

  /** Resolves with the exit if it happens within `ms`, else undefined. */
  async exitWithin(ms: number): Promise<PluginExit | undefined> {
    if (this.exitInfo !== undefined) return this.exitInfo;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts the plugin and waits for its handshake line. Rejects with a
   * PluginError that names the cause: spawn failure, wrong cookie, early
   * exit (with the tail of stderr), garbage or a malformed line on stdout,
   * or no handshake within the start timeout. The process is killed on any
   * of these, so a failed start leaves nothing behind.
   */
  static async launch(options: LaunchOptions): Promise<PluginProcess> {
    installExitHook();
    const socketParent = makeSocketParent(options);
    const child = spawnPlugin(options, socketParent);
    children.set(child, socketParent);
    const removeSocketParent = (): void => {
      children.delete(child);
      rmSync(socketParent, { recursive: true, force: true });
    };
    const stderrTail = readStderr(child, options);
    // The launch token is the only thing ever written to stdin; an EPIPE
    // after the plugin exits is expected.
    child.stdin?.on("error", () => {});
    if (options.goPlugin !== true) child.stdin?.write(`${options.launchToken}\n`);
    const exited = whenExited(child, stderrTail, removeSocketParent, options.limits);
    const line = await awaitHandshake(child, options, stderrTail, exited, removeSocketParent);
    return new PluginProcess(child, line, stderrTail, exited, options.logger, options.name);
  }
}

/**
 * Makes the private directory the plugin creates its socket in. The host
 * owns it, so that it can remove it whatever becomes of the plugin, even one
 * killed by SIGKILL before it could clean up, without trusting a path the
 * plugin printed. The user's PLUGIN_UNIX_SOCKET_DIR, if any, is its parent.
 */
function makeSocketParent(options: LaunchOptions): string {
  const parentDir = options.env?.[Env.unixSocketDir] || process.env[Env.unixSocketDir] || tmpdir();
  try {
    return mkdtempSync(join(parentDir, "cph-"));
  } catch (error) {
    throw new PluginError(
      "spawn-failed",
      `could not start plugin ${options.label}: cannot create its socket directory in ` +
        `${parentDir} (${(error as Error).message})`,
      { cause: error },
    );
  }
}

/** Spawns the plugin in its own process group, with the handshake's environment. */
function spawnPlugin(options: LaunchOptions, socketParent: string): ChildProcess {
  const { handshake } = options;
  try {
    const run = limitedCommand(options.command, options.args, options.limits);
    return spawn(run.command, run.args, {
      cwd: options.cwd,
      env: {
        ...inheritedEnv(),
        ...options.env,
        [handshake.magicCookieKey]: handshake.magicCookieValue,
        [Env.protocolVersions]: options.hostVersions.join(","),
        [Env.unixSocketDir]: socketParent,
        [Env.minPort]: "10000",
        [Env.maxPort]: "25000",
        ...(options.goPlugin !== true && {
          [Env.transports]: (options.transports ?? DEFAULT_LOCAL_TRANSPORTS).join(","),
          [Env.parentWatch]: "stdin",
          [Env.launchToken]: "stdin",
        }),
      },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
  } catch (error) {
    rmSync(socketParent, { recursive: true, force: true });
    throw new PluginError(
      "spawn-failed",
      `could not start plugin ${options.label}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** Logs every stderr line as it comes, and keeps the last ones for error messages. */
function readStderr(child: ChildProcess, options: LaunchOptions): TailBuffer {
  const tail = new TailBuffer();
  const budget = floodGuard(options.logger, options.name);
  const lines = new LineSplitter((line) => {
    tail.push(line);
    if (!budget.admit(line.length)) return;
    options.logger.log(
      options.stderrRecord?.(line) ?? parsePluginLine(line, options.name, "stderr", "info"),
    );
  });
  child.stderr?.on("data", (chunk: Buffer) => lines.push(chunk));
  child.stderr?.on("end", () => {
    lines.end();
    budget.flush();
  });
  return tail;
}

/** Resolves when the process has exited and its pipes are closed; never rejects. */
function whenExited(
  child: ChildProcess,
  stderrTail: TailBuffer,
  removeSocketParent: () => void,
  limits: ResourceLimits | undefined,
): Promise<RawExit> {
  return new Promise<RawExit>((resolve) => {
    child.once("exit", (code, signal) => {
      const exitedAt = Date.now();
      // Let the pipes drain, so the stderr tail is complete, but don't wait
      // on a grandchild that inherited them: close our ends instead, so
      // they cannot keep the host's event loop alive.
      const finish = (): void => {
        for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.destroy();
        removeSocketParent();
        const tail = stderrTail.toString();
        const exceeded = exceededLimit(limits, code, signal, tail);
        resolve({
          code,
          signal,
          description:
            exceeded === undefined
              ? describeExit(code, signal)
              : `exceeded ${exceeded} (${describeExit(code, signal).replace(/^was /, "")})`,
          stderrTail: tail,
          exitedAt,
          ...(exceeded !== undefined && { exceeded }),
        });
      };
      const timer = setTimeout(finish, 200);
      child.once("close", () => {
        clearTimeout(timer);
        finish();
      });
    });
  });
}

/**
 * Reads stdout: the first line is the handshake, the rest goes to the
 * logger. Resolves with the parsed line; rejects, after killing the plugin,
 * on whatever comes first of a bad line, an exit, a spawn error, the start
 * timeout, or the launch's abort signal.
 */
function awaitHandshake(
  child: ChildProcess,
  options: LaunchOptions,
  stderrTail: TailBuffer,
  exited: Promise<RawExit>,
  removeSocketParent: () => void,
): Promise<HandshakeLine> {
  const { label } = options;
  return new Promise<HandshakeLine>((resolve, reject) => {
    let settled = false;
    const fail = (error: PluginError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killAndReject(child, exited, error, reject);
    };

    const timer = setTimeout(() => {
      fail(
        new PluginError(
          "handshake-timeout",
          `plugin ${label} did not complete its handshake within ${options.startTimeoutMs} ms; ` +
            `it was killed. A plugin must print its handshake line on stdout once it listens.` +
            stderrSuffix(stderrTail),
          { stderrTail: stderrTail.toString() },
        ),
      );
    }, options.startTimeoutMs);

    const closedWhileStarting = (): void =>
      fail(new PluginError("not-running", `plugin ${label} was closed while starting`));
    if (options.signal?.aborted) closedWhileStarting();
    options.signal?.addEventListener("abort", closedWhileStarting, { once: true });

    child.once("error", (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) removeSocketParent();
      fail(
        new PluginError(
          "spawn-failed",
          `could not start plugin ${label}: ${err.code === "ENOENT" ? "command not found" : err.message}`,
          { cause: err },
        ),
      );
    });

    void exited.then((exit) => fail(exitedBeforeHandshake(exit, options, stderrTail)));

    let handshakeSeen = false;
    const budget = floodGuard(options.logger, options.name);
    const stdout = new LineSplitter((line) => {
      if (handshakeSeen) {
        // Output after the handshake is forwarded, unless it floods (OutputBudget).
        if (budget.admit(line.length)) {
          options.logger.log(parsePluginLine(line, options.name, "stdout", "info"));
        }
        return;
      }
      handshakeSeen = true;
      let parsed: HandshakeLine;
      try {
        parsed = parseHandshakeLine(line);
      } catch (error) {
        const e = error as PluginError;
        fail(
          new PluginError(e.kind, `plugin ${label}: ${e.message}${stderrSuffix(stderrTail)}`, {
            stderrTail: stderrTail.toString(),
          }),
        );
        return;
      }
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(parsed);
    });
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stdout?.on("end", () => {
      stdout.end();
      budget.flush();
    });
  });
}

/**
 * Kills the plugin and rejects once it is gone (or after 2 s if it cannot
 * be reaped), so that a failed start leaves nothing behind.
 */
function killAndReject(
  child: ChildProcess,
  exited: Promise<RawExit>,
  error: PluginError,
  reject: (error: PluginError) => void,
): void {
  killGroup(child, "SIGKILL");
  const reaped = child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
  if (reaped) {
    reject(error);
    return;
  }
  const giveUp = setTimeout(() => reject(error), 2_000);
  void exited.then(() => {
    clearTimeout(giveUp);
    reject(error);
  });
}

/** The error for an exit before the handshake line: a refused cookie, or another end. */
function exitedBeforeHandshake(
  exit: RawExit,
  options: LaunchOptions,
  stderrTail: TailBuffer,
): PluginError {
  const { label, handshake } = options;
  const cookie = COOKIE_MARKERS.some((m) => exit.stderrTail.toLowerCase().includes(m));
  return cookie
    ? new PluginError(
        "cookie-mismatch",
        `plugin ${label} refused to start: it is not a plugin for this host, or its magic ` +
          `cookie ${handshake.magicCookieKey} does not match (it ${exit.description}).` +
          stderrSuffix(stderrTail),
        { stderrTail: exit.stderrTail },
      )
    : new PluginError(
        "exited-before-handshake",
        `plugin ${label} ${exit.description} before completing its handshake; ` +
          `is the command a plugin?` +
          stderrSuffix(stderrTail),
        { stderrTail: exit.stderrTail },
      );
}

/**
 * go-plugin's variables that a host sets only on some launches. A host that
 * is itself a plugin has them from its own host; passed on, they would make
 * the grandchild serve mutual TLS that trusts the grandparent, or announce
 * multiplexing. (The others, cookie and PLUGIN_PROTOCOL_VERSIONS,
 * PLUGIN_UNIX_SOCKET_DIR, PLUGIN_MIN_PORT and PLUGIN_MAX_PORT, are always
 * set by the launcher.)
 */
const PER_LAUNCH_GO_PLUGIN_VARS = ["PLUGIN_CLIENT_CERT", "PLUGIN_MULTIPLEX_GRPC"];

/**
 * The host's environment, less the variables that would make a plugin serve
 * in network mode or over TLS instead of answering its host: a host that
 * itself runs with CONNECT_PLUGIN_LISTEN or PLUGIN_CLIENT_CERT must not pass
 * it on. (A source's own `env` may still set them.)
 */
function inheritedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith("CONNECT_PLUGIN_") || PER_LAUNCH_GO_PLUGIN_VARS.includes(key)) {
      delete env[key];
    }
  }
  return env;
}

function stderrSuffix(tail: TailBuffer): string {
  const text = tail.toString();
  return text === ""
    ? " It wrote nothing to stderr."
    : `\n--- plugin stderr (last lines) ---\n${text}`;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal !== null) return `was killed by ${signal}`;
  return `exited with code ${code ?? "unknown"}`;
}

/**
 * When the host process exits (normally, through process.exit, or on an
 * uncaught exception), kill every plugin group still running, including
 * ones still starting, and remove their socket directories. A host killed by
 * SIGKILL cannot run this; its plugins then see end-of-file on stdin and
 * exit by themselves. A group that refuses the signal (EPERM, which
 * killGroup returns) is left to that end-of-file too, here as everywhere in
 * the launcher: this hook must never throw.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const [child, socketParent] of children) {
      killGroup(child, "SIGKILL");
      rmSync(socketParent, { recursive: true, force: true });
    }
  });
}

/** The output budget of one plugin stream, saying in the log when it drops lines and how many. */
function floodGuard(logger: Logger, name: string): OutputBudget {
  return new OutputBudget((dropping, dropped) =>
    logger.log(
      dropping
        ? hostRecord(
            name,
            "warn",
            "the plugin floods its output (over 5,000 lines or 4 MiB per second): " +
              "dropping its lines until it slows down",
          )
        : hostRecord(name, "warn", `dropped ${dropped} lines of the plugin's output`, { dropped }),
    ),
  );
}
