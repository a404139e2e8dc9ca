/**
 * The conformance suite: launches a plugin program the way a connect-plugin
 * host does and checks each requirement of docs/protocol.md, one check per
 * requirement. Required checks fail the run; recommended ones only warn.
 * Nothing here trusts the plugin: every launch is in its own process group,
 * killed at the end, and every wait has a deadline.
 */
import { randomBytes } from "node:crypto";
import { statSync, existsSync } from "node:fs";
import { dirname, relative, isAbsolute } from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { HealthResponse_Status, PluginController } from "../gen/connectplugin/v1/controller_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { parseHandshakeLine, type HandshakeLine } from "../protocol/handshake-line.js";
import { certificateFromHandshake, generateAutoMtlsCertificate } from "../security/auto-mtls.js";
import { createGoPluginTransport, type PeerTls } from "../transport/goplugin-dial.js";
import { createUrlTransport, type ClientTransport } from "../transport/client-transport.js";
import { launch, type Launch } from "./launch.js";

export type CheckStatus = "pass" | "fail" | "warn" | "skip";

export interface CheckResult {
  readonly id: string;
  readonly requirement: "required" | "recommended";
  /** What the plugin must do, in one sentence. */
  readonly title: string;
  readonly status: CheckStatus;
  /** What was seen, and for a failure what to change. */
  readonly detail: string;
}

export interface ConformanceOptions {
  /** The plugin program and its arguments. */
  readonly command: readonly string[];
  readonly cookieKey: string;
  readonly cookieValue: string;
  /** The app protocol version the host offers. Default 1. */
  readonly protocolVersion?: number;
  /** How long to wait for a handshake line, an exit or a log line. Default 10 s. */
  readonly timeoutMs?: number;
}

export interface ConformanceReport {
  readonly command: readonly string[];
  readonly passed: boolean;
  readonly checks: CheckResult[];
}

class CheckFailed extends Error {}
const must = (ok: boolean, message: string): void => {
  if (!ok) throw new CheckFailed(message);
};

const quote = (s: string, max = 160) => JSON.stringify(s.length > max ? s.slice(0, max) + "…" : s);

/** Runs every check against `options.command`; never throws for the plugin's faults. */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const version = options.protocolVersion ?? 1;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const cookie = { [options.cookieKey]: options.cookieValue };
  const checks: CheckResult[] = [];
  const launches: Launch[] = [];
  const transports: ClientTransport[] = [];

  const start = (env: Record<string, string>, token?: string) => {
    const l = launch(options.command, env, {
      firstLineTimeoutMs: timeoutMs,
      ...(token !== undefined && { token }),
    });
    launches.push(l);
    return l;
  };
  const hostEnv = (extra: Record<string, string> = {}) => ({
    ...cookie,
    PLUGIN_PROTOCOL_VERSIONS: String(version),
    CONNECT_PLUGIN_TRANSPORTS: "connect",
    CONNECT_PLUGIN_PARENT_WATCH: "stdin",
    CONNECT_PLUGIN_LAUNCH_TOKEN: "stdin",
    ...extra,
  });
  const check = async (
    id: string,
    requirement: CheckResult["requirement"],
    title: string,
    run: () => string | Promise<string>,
    skipBecause?: string,
  ): Promise<boolean> => {
    if (skipBecause !== undefined) {
      checks.push({ id, requirement, title, status: "skip", detail: skipBecause });
      return false;
    }
    try {
      const detail = await run();
      checks.push({ id, requirement, title, status: "pass", detail });
      return true;
    } catch (e) {
      const detail =
        e instanceof CheckFailed
          ? e.message
          : `unexpected error: ${e instanceof Error ? e.message : String(e)}`;
      checks.push({
        id,
        requirement,
        title,
        status: requirement === "required" ? "fail" : "warn",
        detail,
      });
      return false;
    }
  };
  const stderrTail = (l: Launch) =>
    l.stderrLines.length === 0
      ? "nothing on stderr"
      : `stderr: ${quote(l.stderrLines.slice(-3).join(" | "))}`;
  const connectTo = (line: HandshakeLine, token: string | undefined, tls?: PeerTls) => {
    const interceptors: Interceptor[] =
      token === undefined
        ? []
        : [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${token}`);
              return next(req);
            },
          ];
    const t = createGoPluginTransport(line, {
      protocol: line.protocol === "grpc" ? "grpc" : "connect",
      interceptors,
      ...(tls !== undefined && { tls }),
    });
    transports.push(t);
    return t.transport;
  };
  const callOpts = { timeoutMs: 5_000 };
  // How long a plugin may take to exit (hosts kill after 2 s).
  const exitMs = Math.min(5_000, timeoutMs);

  try {
    // 1. The cookie.
    await check(
      "cookie",
      "required",
      "Without the magic cookie, exit non-zero with a message on stderr and no handshake line",
      async () => {
        const l = start({ PLUGIN_PROTOCOL_VERSIONS: String(version) });
        const exitedInTime = await l.exitsWithin(timeoutMs);
        must(
          l.stdoutLines.length === 0,
          `printed ${quote(l.stdoutLines[0] ?? "")} on stdout without the magic cookie ${options.cookieKey}; check the cookie before anything else`,
        );
        must(
          exitedInTime,
          `still running ${timeoutMs} ms after a launch without the magic cookie ${options.cookieKey}; exit 1 instead`,
        );
        const { code } = await l.exited;
        must(
          code !== 0 && code !== null,
          `exited with ${code} without the magic cookie; exit non-zero (go-plugin uses 1)`,
        );
        must(
          l.stderrLines.some((s) => s.trim() !== ""),
          "exited without a word on stderr; say that this program is a plugin, to be started by its host",
        );
        return `exited ${code}; stderr: ${quote(l.stderrLines[0] ?? "")}`;
      },
    );

    // 2. The main launch, as a connect-plugin host makes it.
    const token = randomBytes(32).toString("base64url");
    const main = start(hostEnv(), token);
    let line: HandshakeLine | undefined;
    await check(
      "handshake-line",
      "required",
      "Print one handshake line CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT on stdout",
      async () => {
        const raw = await main.firstLine;
        must(
          raw !== undefined,
          `no line on stdout within ${timeoutMs} ms (${main.child.exitCode !== null ? `exited ${main.child.exitCode}` : "still running"}; ${stderrTail(main)})`,
        );
        try {
          line = parseHandshakeLine(raw as string);
        } catch (e) {
          throw new CheckFailed(
            `the first stdout line ${quote(raw as string)} is not a handshake line (${e instanceof Error ? e.message : String(e)}); nothing may be printed on stdout before it`,
          );
        }
        must(
          line.protocolVersion === version,
          `announced app protocol version ${line.protocolVersion}; the host offered only ${version}`,
        );
        must(
          line.protocol === "connect" || line.protocol === "grpc",
          `announced protocol ${quote(line.protocol)}; a host that lists "connect" in CONNECT_PLUGIN_TRANSPORTS accepts "connect" or "grpc"`,
        );
        must(
          line.serverCert === undefined,
          "sent a certificate although the host set no PLUGIN_CLIENT_CERT",
        );
        return `${quote(raw as string)}`;
      },
    );
    const noLine = line === undefined ? "no handshake line" : undefined;

    await check(
      "private-socket",
      "required",
      "Listen on a unix socket in a fresh 0700 directory under PLUGIN_UNIX_SOCKET_DIR (or loopback TCP)",
      () => {
        const l = line as HandshakeLine;
        if (l.network === "tcp") {
          must(
            /^(127\.\d+\.\d+\.\d+|\[::1\]|::1|localhost):\d+$/.test(l.address),
            `listens on ${l.address}; a launched plugin listens on loopback only`,
          );
          return `loopback TCP ${l.address} (allowed when a socket path would be too long)`;
        }
        must(isAbsolute(l.address), `socket path ${quote(l.address)} is not absolute`);
        const rel = relative(main.socketDir, l.address);
        must(
          !rel.startsWith("..") && !isAbsolute(rel),
          `socket ${l.address} is not under PLUGIN_UNIX_SOCKET_DIR (${main.socketDir})`,
        );
        const dir = dirname(l.address);
        must(
          dir !== main.socketDir,
          `socket sits directly in PLUGIN_UNIX_SOCKET_DIR; make a fresh directory (mode 0700) in it`,
        );
        const mode = statSync(dir).mode & 0o777;
        must(
          (mode & 0o077) === 0,
          `socket directory ${dir} has mode ${mode.toString(8)}; it must be 0700`,
        );
        return `${l.address} (directory mode 700)`;
      },
      noLine,
    );

    await check(
      "launch-token",
      "required",
      "Refuse calls without the launch token read from stdin (Unauthenticated)",
      async () => {
        const l = line as HandshakeLine;
        for (const [label, given] of [
          ["no token", undefined],
          ["a wrong token", "not-the-token"],
        ] as const) {
          const controller = createClient(PluginController, connectTo(l, given));
          try {
            await controller.handshake({ protocolVersions: [version] }, callOpts);
          } catch (e) {
            const err = ConnectError.from(e);
            must(
              err.code === Code.Unauthenticated,
              `Handshake with ${label} failed with ${Code[err.code]} (${err.rawMessage}); expected Unauthenticated`,
            );
            continue;
          }
          throw new CheckFailed(
            `Handshake with ${label} succeeded; with CONNECT_PLUGIN_LAUNCH_TOKEN=stdin, read the first stdin line and require "authorization: Bearer <it>" on every call but health checks`,
          );
        }
        return "Handshake without or with a wrong token: Unauthenticated";
      },
      noLine,
    );

    let served: string[] = [];
    await check(
      "controller-handshake",
      "required",
      "Serve connectplugin.v1.PluginController/Handshake: negotiate the version, list plugins with their services",
      async () => {
        const controller = createClient(PluginController, connectTo(line as HandshakeLine, token));
        const res = await controller.handshake({ protocolVersions: [version] }, callOpts);
        must(
          res.protocolVersion === version,
          `answered protocol_version ${res.protocolVersion} to a host offering [${version}]`,
        );
        must(
          res.supportedVersions.includes(version),
          `supported_versions [${res.supportedVersions.join(", ")}] leaves out the negotiated ${version}`,
        );
        must(res.availablePlugins.length > 0, "lists no plugins");
        for (const p of res.availablePlugins) {
          must(
            p.name !== "" && /^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$/.test(p.service),
            `plugin ${quote(p.name)} has service ${quote(p.service)}; give each a name and its fully qualified protobuf service`,
          );
        }
        served = res.availablePlugins.map((p) => p.service);
        const mismatch = await controller
          .handshake({ protocolVersions: [version + 1000] }, callOpts)
          .catch((e: unknown) => ConnectError.from(e));
        if (!(mismatch instanceof ConnectError)) {
          must(
            mismatch.protocolVersion !== version + 1000,
            `claimed protocol version ${version + 1000}, which it does not speak`,
          );
          must(
            mismatch.availablePlugins.length === 0,
            "listed plugins for a version it does not speak",
          );
        }
        return res.availablePlugins.map((p) => `${p.name}=${p.service}@${p.version}`).join(", ");
      },
      noLine,
    );

    await check(
      "controller-health",
      "required",
      "Serve PluginController/Health (SERVING)",
      async () => {
        const res = await createClient(
          PluginController,
          connectTo(line as HandshakeLine, token),
        ).health({}, callOpts);
        must(
          res.status === HealthResponse_Status.SERVING,
          `Health answered ${HealthResponse_Status[res.status]}`,
        );
        return "SERVING";
      },
      noLine,
    );

    await check(
      "grpc-health",
      "recommended",
      'Serve grpc.health.v1.Health for "", "plugin" and each service, without the launch token',
      async () => {
        const health = createClient(Health, connectTo(line as HandshakeLine, undefined));
        for (const service of ["", "plugin", ...served]) {
          const res = await health.check({ service }, callOpts).catch((e: unknown) => {
            throw new CheckFailed(
              `grpc.health.v1.Health/Check(${quote(service)}) failed: ${ConnectError.from(e).message}`,
            );
          });
          must(
            res.status === HealthCheckResponse_ServingStatus.SERVING,
            `Check(${quote(service)}) answered ${HealthCheckResponse_ServingStatus[res.status]}`,
          );
        }
        return `SERVING for ${["''", "plugin", ...served].join(", ")}`;
      },
      noLine,
    );

    await check(
      "shutdown",
      "required",
      "On PluginController/Shutdown, answer, drain, and exit 0 within the host's 2 s grace period",
      async () => {
        const t = performance.now();
        await createClient(PluginController, connectTo(line as HandshakeLine, token)).shutdown(
          { reason: "conformance" },
          callOpts,
        );
        must(
          await main.exitsWithin(exitMs),
          `answered Shutdown but was still running ${exitMs} ms later (hosts kill after 2 s)`,
        );
        const ms = Math.round(performance.now() - t);
        const { code, signal } = await main.exited;
        must(code === 0, `exited with ${code ?? signal} after Shutdown; exit 0`);
        must(ms <= 2_500, `took ${ms} ms to exit after Shutdown; hosts kill after 2 s`);
        return `exited 0 after ${ms} ms`;
      },
      noLine,
    );

    await check(
      "stdout-quiet",
      "required",
      "Write nothing to stdout after the handshake line",
      () => {
        const extra = main.stdoutLines.slice(1);
        must(
          extra.length === 0,
          `wrote ${extra.length} more line(s) on stdout after the handshake, e.g. ${quote(extra[0] ?? "")}; log to stderr`,
        );
        return "no further stdout output";
      },
      noLine,
    );

    await check(
      "socket-cleanup",
      "recommended",
      "Remove the socket when exiting",
      () => {
        const l = line as HandshakeLine;
        if (l.network === "tcp") return "TCP: nothing to remove";
        must(
          !existsSync(l.address),
          `left ${l.address} behind (hosts remove their own directory, but not every host does)`,
        );
        return "socket removed";
      },
      noLine ?? (main.child.exitCode === null ? "still running" : undefined),
    );

    await check(
      "json-logs",
      "recommended",
      "Log JSON lines with @level, @message and @timestamp on stderr",
      () => {
        const bad = main.stderrLines.filter((s) => {
          try {
            const o = JSON.parse(s) as Record<string, unknown>;
            return (
              typeof o["@level"] !== "string" ||
              typeof o["@message"] !== "string" ||
              typeof o["@timestamp"] !== "string"
            );
          } catch {
            return true;
          }
        });
        must(
          bad.length === 0,
          `${bad.length} of ${main.stderrLines.length} stderr lines are not hclog-style JSON, e.g. ${quote(bad[0] ?? "")}; hosts log them as plain text`,
        );
        return `${main.stderrLines.length} JSON line(s)`;
      },
    );

    // 3. Version negotiation on the handshake line.
    await check(
      "version-negotiation",
      "required",
      "Pick the highest version shared with PLUGIN_PROTOCOL_VERSIONS; with none shared, announce your own lowest",
      async () => {
        const offered = `${version + 1000},${version}`;
        const both = start(hostEnv({ PLUGIN_PROTOCOL_VERSIONS: offered }), "t");
        const none = start(
          hostEnv({ PLUGIN_PROTOCOL_VERSIONS: `${version + 1000},${version + 1001}` }),
          "t",
        );
        const [a, b] = await Promise.all([both.firstLine, none.firstLine]);
        must(a !== undefined, `no handshake line when offered ${offered} (${stderrTail(both)})`);
        must(
          parseHandshakeLine(a as string).protocolVersion === version,
          `offered ${offered}, announced ${quote(a as string)}; pick ${version}, the one it speaks`,
        );
        must(
          b !== undefined,
          `no handshake line when offered only versions it does not speak (${stderrTail(none)}); announce your lowest version so that the host can name the mismatch`,
        );
        const v = parseHandshakeLine(b as string).protocolVersion;
        must(
          v !== version + 1000 && v !== version + 1001,
          `announced version ${v}, which it does not speak, to a host offering ${version + 1000},${version + 1001}`,
        );
        return `offered ${offered}: ${version}; offered ${version + 1000},${version + 1001}: its own ${v}`;
      },
    );

    // 4. Exits when the host goes away, and on SIGTERM.
    await check(
      "parent-watch",
      "required",
      "With CONNECT_PLUGIN_PARENT_WATCH=stdin, exit when stdin reaches end-of-file (the host died)",
      async () => {
        const l = start(hostEnv(), "t");
        must((await l.firstLine) !== undefined, `no handshake line (${stderrTail(l)})`);
        l.child.stdin?.end();
        must(
          await l.exitsWithin(exitMs),
          `still running ${exitMs} ms after its stdin closed; a plugin must not outlive its host`,
        );
        return `exited ${(await l.exited).code} after stdin closed`;
      },
    );

    await check("sigterm", "required", "Exit on SIGTERM (a graceful shutdown)", async () => {
      const l = start(hostEnv(), "t");
      must((await l.firstLine) !== undefined, `no handshake line (${stderrTail(l)})`);
      l.child.kill("SIGTERM");
      must(await l.exitsWithin(exitMs), `still running ${exitMs} ms after SIGTERM`);
      const { code, signal } = await l.exited;
      return `exited ${code ?? signal}`;
    });

    // 5. AutoMTLS.
    await check(
      "auto-mtls",
      "recommended",
      "With PLUGIN_CLIENT_CERT, serve mutual TLS and put the plugin's certificate in the handshake line",
      async () => {
        const host = generateAutoMtlsCertificate();
        const l = start(hostEnv({ PLUGIN_CLIENT_CERT: host.certPem }), token);
        const raw = await l.firstLine;
        must(raw !== undefined, `no handshake line with PLUGIN_CLIENT_CERT set (${stderrTail(l)})`);
        const parsed = parseHandshakeLine(raw as string);
        must(
          parsed.serverCert !== undefined,
          "sent no certificate in its handshake line: hosts fall back to plaintext behind the private socket and the launch token, and refuse the plugin with autoMTLS: true",
        );
        const peer = {
          certPem: host.certPem,
          keyPem: host.keyPem,
          peerCertPem: certificateFromHandshake(parsed.serverCert as string),
        };
        const res = await createClient(PluginController, connectTo(parsed, token, peer)).handshake(
          { protocolVersions: [version] },
          callOpts,
        );
        must(res.protocolVersion === version, "Handshake over mutual TLS failed to negotiate");
        const stranger = generateAutoMtlsCertificate();
        const refused = await createClient(
          PluginController,
          connectTo(parsed, token, { ...peer, certPem: stranger.certPem, keyPem: stranger.keyPem }),
        )
          .handshake({ protocolVersions: [version] }, callOpts)
          .then(
            () => false,
            () => true,
          );
        must(refused, "accepted a client certificate other than PLUGIN_CLIENT_CERT");
        return "mutual TLS with the host's certificate; a stranger's certificate refused";
      },
    );

    // 6. Network mode.
    await check(
      "network-mode",
      "recommended",
      "With CONNECT_PLUGIN_LISTEN=HOST:PORT, serve there, log the URL, and refuse Shutdown",
      async () => {
        const l = start({ CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" });
        const deadline = Date.now() + timeoutMs;
        let url: string | undefined;
        while (url === undefined && Date.now() < deadline && l.child.exitCode === null) {
          for (const s of l.stderrLines) {
            try {
              const u = (JSON.parse(s) as { url?: unknown }).url;
              if (typeof u === "string") url = u;
            } catch {
              // not JSON
            }
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        must(
          url !== undefined,
          `logged no {"url": ...} line on stderr within ${timeoutMs} ms (${stderrTail(l)})`,
        );
        const parsed = new URL(url as string);
        must(
          ["127.0.0.1", "[::1]", "localhost"].includes(parsed.hostname),
          `logged ${url}, not on loopback as asked`,
        );
        const t = createUrlTransport(parsed, { protocol: "grpc", httpVersion: "2" });
        transports.push(t);
        const health = await createClient(PluginController, t.transport).health({}, callOpts);
        must(
          health.status === HealthResponse_Status.SERVING,
          `Health at ${url} answered ${HealthResponse_Status[health.status]}`,
        );
        const shutdown = await createClient(PluginController, t.transport)
          .shutdown({ reason: "conformance" }, callOpts)
          .then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
        must(
          shutdown?.code === Code.PermissionDenied,
          `Shutdown from a remote host ${shutdown === undefined ? "was accepted" : `failed with ${Code[shutdown.code]}`}; refuse it with PermissionDenied (a shared service is not one host's to stop)`,
        );
        l.child.kill("SIGTERM");
        must(
          await l.exitsWithin(exitMs),
          `still running ${exitMs} ms after SIGTERM in network mode`,
        );
        return `served at ${url}; Shutdown refused; SIGTERM ended it`;
      },
    );
  } finally {
    for (const t of transports) t.close();
    await Promise.all(launches.map((l) => l.kill()));
  }
  return { command: options.command, passed: checks.every((c) => c.status !== "fail"), checks };
}
