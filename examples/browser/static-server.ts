import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/** What the page reads from /config.json: where the plugin is and how to authenticate. */
export interface DemoConfig {
  readonly pluginUrl: string;
  readonly token: string;
}

const files: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/page.js": { file: "page.js", type: "text/javascript; charset=utf-8" },
};

/**
 * A tiny static server for the bundled page, on its own loopback port and
 * therefore its own origin (http://127.0.0.1:PORT), different from the
 * plugin's. `config` is read per request, so the plugin may start later.
 */
export async function serveDemoPage(
  bundleDir: string,
  config: () => DemoConfig,
  host = "127.0.0.1",
): Promise<{ origin: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path === "/config.json") {
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
      res.end(JSON.stringify(config()));
      return;
    }
    const entry = files[path];
    if (entry === undefined) {
      res.writeHead(404).end("not found\n");
      return;
    }
    readFile(join(bundleDir, entry.file)).then(
      (body) => res.writeHead(200, { "Content-Type": entry.type }).end(body),
      (error: Error) => res.writeHead(500).end(`${error.message}\n`),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
