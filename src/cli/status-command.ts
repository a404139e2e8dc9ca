/**
 * `connect-plugin status [--from URL] [--web]`: the installed plugins, or
 * every plugin a running host manages (read from its status page's
 * status.json), as text, JSON or a live page.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Command } from "commander";
import { ManagementError } from "../manifest/errors.js";
import { PluginManager } from "../manager/manager.js";
import { collectStatus, type PluginStatus, type StatusSnapshot } from "../status/snapshot.js";
import { statusPage } from "../status/status-page.js";
import { isLoopbackHost } from "../security/plaintext.js";
import { CorsPolicy } from "../security/cors.js";
import { action, globals, verifyOptions } from "./program.js";

export function registerStatusCommand(program: Command): void {
  program
    .command("status")
    .description(
      "show the installed plugins, or with --from those a running host manages; --web serves a live status page",
    )
    .option(
      "--from <url>",
      "a running host's status page (statusPage()): show the plugins it runs, with generation, health, restarts and cluster instances",
    )
    .option("--web", "serve the status page until interrupted")
    .option("--host <address>", "address for --web", "127.0.0.1")
    .option("--port <port>", "port for --web (0: any free port)", "0")
    .option(
      "--allow-remote",
      "let --web listen on a non-loopback --host (needs --token or CONNECT_PLUGIN_STATUS_TOKEN)",
    )
    .option("--token <secret>", "require this token for --web (?token=… or Bearer)")
    .action(
      action(
        async (
          options: {
            web?: boolean;
            host: string;
            port: string;
            allowRemote?: boolean;
            token?: string;
            from?: string;
          },
          command: Command,
        ) => {
          const g = globals();
          // --host, --port, --allow-remote and --token shape the --web page only:
          // without --web they would be ignored, and the user shown no page.
          const webOnly = ["host", "port", "allowRemote", "token"]
            .filter((o) => command.getOptionValueSource(o) === "cli")
            .map((o) => `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
          if (options.web !== true && webOnly.length > 0)
            throw new ManagementError(
              "invalid-config",
              `${webOnly.join(" and ")} ${webOnly.length === 1 ? "is" : "are"} for --web only: add --web to serve the status page`,
            );
          if (options.from !== undefined && options.web === true)
            throw new ManagementError(
              "invalid-config",
              "--from and --web do not go together: --from shows the plugins a running host manages, --web serves a page of the plugins installed here",
            );
          if (options.from !== undefined) {
            const snapshot = await fetchSnapshot(options.from);
            const text =
              snapshot.plugins.length === 0
                ? `the host at ${options.from} manages no plugins`
                : snapshot.plugins.map(running).join("\n");
            return { json: { from: options.from, ...snapshot }, text };
          }
          const manager = new PluginManager({ directories: [g.dir], ...verifyOptions(g) });
          await manager.scan();
          if (options.web !== true) {
            const { plugins } = await collectStatus(manager);
            const text =
              plugins.length === 0
                ? `no plugins installed in ${g.dir}`
                : plugins.map(line).join("\n");
            return { json: { dir: g.dir, plugins }, text };
          }
          const port = Number(options.port);
          if (options.port.trim() === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
            throw new ManagementError(
              "invalid-config",
              `--port must be 0 to 65535, got ${options.port}`,
            );
          }
          const token = options.token ?? process.env.CONNECT_PLUGIN_STATUS_TOKEN;
          if (!isLoopbackHost(options.host) && (options.allowRemote !== true || !token)) {
            throw new ManagementError(
              "invalid-config",
              `--host ${options.host} is not a loopback address: the status page shows every ` +
                `plugin's command line and endpoints, so it serves other machines only with ` +
                `--allow-remote and a token (--token or CONNECT_PLUGIN_STATUS_TOKEN)`,
            );
          }
          const page = statusPage(manager, {
            title: `connect-plugin status: ${g.dir}`,
            ...(token ? { token } : {}),
          });
          // On loopback the page usually has no token: answer only loopback
          // Host names, so that a site rebound to 127.0.0.1 cannot read it.
          const server = createServer(
            isLoopbackHost(options.host)
              ? CorsPolicy.wrap(undefined, page, undefined, { allowedHosts: [] })
              : page,
          );
          await new Promise<void>((resolve, reject) => {
            server.once("error", (e) =>
              reject(new ManagementError("io", `cannot serve the status page: ${e.message}`)),
            );
            server.listen(port, options.host, resolve);
          });
          const { address, port: bound } = server.address() as AddressInfo;
          const host = address.includes(":") ? `[${address}]` : address;
          const url = `http://${host}:${bound}/`;
          if (g.json === true) process.stdout.write(JSON.stringify({ url }) + "\n");
          else process.stdout.write(`status page: ${url} (Ctrl-C to stop)\n`);
          await new Promise<void>((resolve) => {
            const stop = (): void => {
              server.closeAllConnections();
              server.close(() => resolve());
            };
            process.once("SIGINT", stop);
            process.once("SIGTERM", stop);
          });
          return undefined;
        },
      ),
    );
}

function line(p: PluginStatus): string {
  return p.problem !== undefined
    ? `${p.name}\tINVALID: ${p.problem}`
    : `${p.name}\t${p.source}\t${p.state}\t${p.where}`;
}

/**
 * Reads a running host's status page snapshot (`status.json` next to the
 * page). A page that cannot be reached, answers an error or is not a status
 * page is "registry" (exit 5, network), as a registry in the same state is.
 */
async function fetchSnapshot(from: string): Promise<StatusSnapshot> {
  let url: URL;
  try {
    url = new URL("status.json", from.endsWith("/") ? from : `${from}/`);
  } catch {
    throw new ManagementError(
      "invalid-config",
      `--from must be the status page's URL, got ${from}`,
    );
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    throw new ManagementError(
      "registry",
      `cannot reach the status page at ${url.href}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`,
    );
  }
  const body = await res.text();
  if (!res.ok) {
    throw new ManagementError("registry", `${url.href} answered ${res.status} ${res.statusText}`);
  }
  try {
    const snapshot = JSON.parse(body) as StatusSnapshot;
    if (!Array.isArray(snapshot.plugins)) throw new Error("no plugins list");
    return snapshot;
  } catch {
    throw new ManagementError(
      "registry",
      `${url.href} is not a connect-plugin status page (its answer is not a status snapshot)`,
    );
  }
}

/** One running plugin, then its cluster instances indented below it. */
function running(p: PluginStatus): string {
  const head = [
    p.name,
    p.source,
    p.state,
    `generation ${p.generation ?? "-"}`,
    `health ${p.health}`,
    `restarts ${p.restarts ?? "-"}`,
    `in flight ${p.inFlight ?? 0}`,
    p.where,
  ].join("\t");
  const instances = p.endpoints.map(
    (e) =>
      `  ${e.id}\t${e.url}\t${e.admission}${e.protocolVersion !== undefined ? ` v${e.protocolVersion}` : ""}` +
      `\t${e.healthy ? "healthy" : "unhealthy"}\tcircuit ${e.circuit}\tin flight ${e.outstanding}` +
      (e.leaving === true ? "\tleaving" : "") +
      (e.reason !== undefined ? `\t${e.reason}` : ""),
  );
  return [head, ...instances].join("\n");
}
