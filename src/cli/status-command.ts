/** `connect-plugin status [--web]`: the installed plugins, as text or as a live page. */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Command } from "commander";
import { ManagementError } from "../manifest/errors.js";
import { PluginManager } from "../manager/manager.js";
import { collectStatus, type PluginStatus } from "../status/snapshot.js";
import { statusPage } from "../status/status-page.js";
import { isLoopbackHost } from "../security/plaintext.js";
import { CorsPolicy } from "../security/cors.js";
import { action, globals, verifyOptions } from "./program.js";

export function registerStatusCommand(program: Command): void {
  program
    .command("status")
    .description("show the installed plugins; --web serves a live status page")
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
        async (options: {
          web?: boolean;
          host: string;
          port: string;
          allowRemote?: boolean;
          token?: string;
        }) => {
          const g = globals();
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
          if (!Number.isInteger(port) || port < 0 || port > 65535) {
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
