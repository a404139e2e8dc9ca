import type * as http from "node:http";
import type * as http2 from "node:http2";
import { collectStatus, type StatusSource } from "./snapshot.js";
import { statusPageHtml } from "./page-html.js";
import { COMMON_HEADERS, checkToken, pageHeaders } from "./page-security.js";

export interface StatusPageOptions {
  /** How often the page gets a fresh snapshot, in milliseconds. Default 1000. */
  readonly intervalMs?: number;
  /** Timeout of each plugin's health check. Default 1000 ms. */
  readonly healthTimeoutMs?: number;
  /** The page's heading. Default "connect-plugin status". */
  readonly title?: string;
  /**
   * Requests must carry this secret: `Authorization: Bearer <token>`, or
   * open the page once at `?token=<token>` (a SameSite cookie then
   * authorises the page's event stream). Default: none, for loopback.
   */
  readonly token?: string;
}

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * A request handler for a live status page of `source` (a PluginManager, or
 * PluginClients with their CallStats): every plugin and cluster instance,
 * where it runs, generation, health, circuit state, restarts, and calls per
 * second with p50/p99 per method. Mount it on any node:http or node:http2
 * server, at the root or under a prefix ending in "/":
 *
 * ```ts
 * http.createServer(statusPage(manager)).listen(9090, "127.0.0.1");
 * ```
 *
 * It serves the page at "…/", a server-sent-event stream of snapshots at
 * "…/events" that the page reads, and one snapshot at "…/status.json".
 * Without `token` there is no authentication: listen on loopback, or mount it
 * behind the host's own. Command lines and URLs are shown with secrets masked;
 * answers carry `nosniff` and a CSP that allows only the page's own script.
 * Open event streams hold their connections; close them with the server
 * (`server.closeAllConnections()`).
 */
export function statusPage(
  source: StatusSource,
  options: StatusPageOptions = {},
): (req: Request, res: Response) => void {
  const intervalMs = options.intervalMs ?? 1_000;
  const healthTimeoutMs = options.healthTimeoutMs ?? 1_000;
  const html = statusPageHtml(options.title ?? "connect-plugin status");
  const htmlHeaders = pageHeaders(html);
  const { token } = options;
  return (req, res) => {
    for (const [name, value] of Object.entries(COMMON_HEADERS)) res.setHeader(name, value);
    // The path by hand, not `new URL(req.url)`: Node's parser lets through
    // targets such as "http://[" on which URL throws, and a throw here would
    // take down the server the page is mounted on.
    const [path = "/", query = ""] = (req.url ?? "/").split("#", 1)[0]?.split("?", 2) ?? [];
    const leaf = path.slice(path.lastIndexOf("/") + 1);
    if (token !== undefined) {
      const access = checkToken(token, req.headers, query);
      if (!access.ok) {
        res.writeHead(401, {
          "Content-Type": "text/plain; charset=utf-8",
          "WWW-Authenticate": 'Bearer realm="connect-plugin status"',
        });
        res.end("this status page needs its token: open it at ?token=<token>\n");
        return;
      }
      if (access.setCookie !== undefined) res.setHeader("Set-Cookie", access.setCookie);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" });
      res.end();
    } else if (leaf === "" || leaf === "index.html") {
      res.writeHead(200, { ...htmlHeaders, "Content-Type": "text/html; charset=utf-8" });
      res.end(html);
    } else if (leaf === "status.json") {
      collectStatus(source, healthTimeoutMs).then(
        (snapshot) => {
          res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
          res.end(JSON.stringify(snapshot));
        },
        (error: Error) => {
          res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
          res.end(`status failed: ${error.message}\n`);
        },
      );
    } else if (leaf === "events") {
      streamSnapshots(source, res, intervalMs, healthTimeoutMs);
    } else {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("not found: the status page is at ./, its event stream at ./events\n");
    }
  };
}

/** Sends a snapshot at once and then every `intervalMs` (one at a time) until the client goes. */
function streamSnapshots(
  source: StatusSource,
  res: Response,
  intervalMs: number,
  healthTimeoutMs: number,
): void {
  res.writeHead(200, {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
  });
  // Both response kinds have write(string); their overloads just differ.
  const write = (text: string): void => void (res as http.ServerResponse).write(text);
  let timer: NodeJS.Timeout | undefined;
  let gone = false;
  res.once("close", () => {
    gone = true;
    clearTimeout(timer);
  });
  const send = async (): Promise<void> => {
    try {
      const snapshot = await collectStatus(source, healthTimeoutMs);
      if (gone) return;
      write(`data: ${JSON.stringify(snapshot)}\n\n`);
    } catch (error) {
      if (gone) return;
      write(`event: failure\ndata: ${JSON.stringify(String(error))}\n\n`);
    }
    timer = setTimeout(() => void send(), intervalMs);
  };
  void send();
}
