import type * as http from "node:http";
import type * as http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";
import type { StreamClaim } from "../transport/h2-streams.js";
import { isLoopbackHost } from "./plaintext.js";

/**
 * Which web pages may call a network-mode plugin from a browser. Nothing is
 * allowed until this is configured: a request that carries an `Origin`
 * header (browsers send one on every cross-origin call) is refused unless the
 * origin is listed, and so is a browser request without one that says it
 * comes from another site (`Sec-Fetch-Site: cross-site` or `same-site`, a
 * no-cors GET or a form). Requests without either header (hosts, curl, gRPC
 * clients) are not affected.
 *
 * Credentials (cookies) are not supported: browsers authenticate with a
 * header such as `authorization: Bearer …` (see `requireBearer`).
 */
export interface CorsOptions {
  /**
   * Allowed origins, exactly as browsers send them: scheme, host and port
   * when it is not the default ("https://app.example.com",
   * "http://127.0.0.1:5173"), no path, no trailing slash. "*" allows every
   * origin. Or a predicate for patterns (preview deployments, for example).
   */
  readonly allowedOrigins: readonly string[] | ((origin: string) => boolean);
  /**
   * Request headers pages may send besides those Connect and gRPC-web need
   * (`cors.allowedHeaders` from @connectrpc/connect) and `Authorization`,
   * which are always allowed. Add "X-Api-Key" for `requireApiKey`.
   */
  readonly allowedHeaders?: readonly string[];
  /**
   * Response headers pages may read besides Grpc-Status, Grpc-Message,
   * Grpc-Status-Details-Bin (`cors.exposedHeaders`) and the `Trailer-*`
   * headers of Connect unary responses, which are always exposed.
   */
  readonly exposedHeaders?: readonly string[];
  /** How long browsers may cache a preflight answer, in seconds. Default 7200 (Chromium's cap). */
  readonly maxAgeSeconds?: number;
}

/** Environment variables that configure CORS for a plugin binary without code changes. */
export const CorsEnv = {
  /** Comma-separated allowed origins ("*" for any). */
  origins: "CONNECT_PLUGIN_CORS_ORIGINS",
  /** Comma-separated extra request headers to allow. */
  headers: "CONNECT_PLUGIN_CORS_HEADERS",
  /** Preflight cache lifetime in seconds. */
  maxAge: "CONNECT_PLUGIN_CORS_MAX_AGE",
  /** Comma-separated Host names a loopback plugin also answers ("*": any); see HostGuard. */
  allowedHosts: "CONNECT_PLUGIN_ALLOWED_HOSTS",
} as const;

/**
 * The DNS-rebinding guard of a plugin bound to loopback: a page on
 * evil.example whose name is made to resolve to 127.0.0.1 reaches the plugin
 * with `Host: evil.example`, so requests naming any Host but a loopback one
 * (localhost, 127.0.0.0/8, ::1) or one listed in `allowedHosts` are refused
 * with 403. `allowedHosts: ["*"]` turns the check off (behind a proxy that
 * rewrites Host, for example). Plugins bound to other addresses are not
 * checked: they are reached by name on purpose.
 */
export interface HostGuard {
  readonly allowedHosts?: readonly string[];
}

const DEFAULT_MAX_AGE_SECONDS = 7200;

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;
type Handler = (req: Request, res: Response) => void;

/** A checked CORS configuration, ready to answer requests. */
export class CorsPolicy {
  private readonly allows: (origin: string) => boolean;
  private readonly allowHeaders: string;
  private readonly exposeHeaders: readonly string[];
  private readonly maxAge: string;

  /** Checks `options` and throws an Error that names what is wrong. */
  constructor(options: CorsOptions) {
    const { allowedOrigins } = options;
    if (typeof allowedOrigins === "function") {
      this.allows = allowedOrigins;
    } else {
      for (const origin of allowedOrigins) checkOrigin(origin);
      const set = new Set(allowedOrigins);
      this.allows = set.has("*") ? () => true : (origin) => set.has(origin);
    }
    this.allowHeaders = unique([
      ...connectCors.allowedHeaders,
      "Authorization",
      ...(options.allowedHeaders ?? []),
    ]).join(", ");
    this.exposeHeaders = unique([...connectCors.exposedHeaders, ...(options.exposedHeaders ?? [])]);
    const maxAge = options.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
    if (!Number.isInteger(maxAge) || maxAge < 0) {
      throw new Error(`CORS maxAgeSeconds must be a whole number of seconds ≥ 0, got ${maxAge}`);
    }
    this.maxAge = String(maxAge);
  }

  /** The policy from CONNECT_PLUGIN_CORS_* variables, or undefined when none is set. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): CorsPolicy | undefined {
    const origins = list(env[CorsEnv.origins]);
    if (origins.length === 0) return undefined;
    const maxAge = env[CorsEnv.maxAge];
    try {
      return new CorsPolicy({
        allowedOrigins: origins,
        allowedHeaders: list(env[CorsEnv.headers]),
        ...(maxAge !== undefined && maxAge !== "" && { maxAgeSeconds: Number(maxAge) }),
      });
    } catch (error) {
      throw new Error(`${CorsEnv.origins}/${CorsEnv.maxAge}: ${(error as Error).message}`);
    }
  }

  /**
   * Wraps an HTTP handler: answers preflights, adds CORS headers for allowed
   * origins, and refuses (403, no CORS headers) requests from any other
   * origin before they reach a plugin. `policy` undefined refuses every
   * request that carries an Origin header. `onRefused` hears of each refused
   * origin once (the first 100), for a log line the operator can act on.
   */
  static wrap(
    policy: CorsPolicy | undefined,
    handler: Handler,
    onRefused?: (origin: string) => void,
    hostGuard?: HostGuard,
  ): Handler {
    const reported = new Set<string>();
    const refusedHost = hostCheck(hostGuard);
    return (req, res) => {
      const host = refusedHost?.(req.headers.host ?? req.headers[":authority"]);
      if (host !== undefined) {
        res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8" });
        res.end(
          `Host ${JSON.stringify(host)} refused: this plugin listens on loopback and answers ` +
            `only loopback names (a guard against DNS rebinding); add the name to ` +
            `${CorsEnv.allowedHosts} or serve()'s allowedHosts\n`,
        );
        return;
      }
      const origin = req.headers.origin;
      if (origin === undefined) {
        const site = req.headers["sec-fetch-site"];
        if (site === "cross-site" || site === "same-site") {
          res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8" });
          res.end(`a ${site} browser request without an Origin header is refused\n`);
          return;
        }
        return handler(req, res);
      }
      if (policy === undefined || !policy.allows(origin)) {
        if (reported.size < 100 && !reported.has(origin)) {
          reported.add(origin);
          onRefused?.(origin);
        }
        return refuse(res, origin, policy);
      }
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Vary", "Origin");
      const method = req.headers["access-control-request-method"];
      if (req.method === "OPTIONS" && method !== undefined) {
        res.writeHead(204, {
          "Access-Control-Allow-Methods": connectCors.allowedMethods.join(", "),
          "Access-Control-Allow-Headers": policy.allowHeaders,
          "Access-Control-Max-Age": policy.maxAge,
        });
        res.end();
        return;
      }
      policy.exposeOnWrite(res);
      handler(req, res);
    };
  }

  /**
   * Guards a StreamClaim (HTTP/2 streams served before node's compatibility
   * layer, see transport/h2-streams.ts) as wrap() guards the handler: the
   * claim sees only streams that wrap() would pass on untouched (an allowed
   * Host, no Origin, no cross-site Sec-Fetch-Site). Every other stream goes
   * to the wrapped handler, which refuses it or adds the CORS headers.
   */
  static wrapStreams(claim: StreamClaim, hostGuard?: HostGuard): StreamClaim {
    const refusedHost = hostCheck(hostGuard);
    return (stream, headers, handOver) => {
      if (refusedHost?.(headers.host ?? headers[":authority"]) !== undefined) return false;
      if (headers.origin !== undefined) return false;
      const site = headers["sec-fetch-site"];
      if (site === "cross-site" || site === "same-site") return false;
      return claim(stream, headers, handOver);
    };
  }

  /**
   * Exposes the fixed list plus every `Trailer-*` header the handler sends
   * (Connect unary trailers), whose names are known only at writeHead.
   */
  private exposeOnWrite(res: Response): void {
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
    const expose = this.exposeHeaders;
    // Set now too, for answers that bypass writeHead (gRPC's trailers-only
    // Unimplemented over HTTP/2 is one HEADERS frame built from getHeaders()).
    res.setHeader("Access-Control-Expose-Headers", expose.join(", "));
    (res as { writeHead: (...args: unknown[]) => Response }).writeHead = (...args) => {
      const headers = args.find((a) => typeof a === "object" && a !== null && !Array.isArray(a));
      const trailers = Object.keys(headers ?? {}).filter((name) => /^trailer-/i.test(name));
      res.setHeader("Access-Control-Expose-Headers", unique([...expose, ...trailers]).join(", "));
      return writeHead(...args);
    };
  }
}

/**
 * The Host check of `hostGuard`: given a Host (or :authority) header, the
 * host name it refuses, or undefined. Undefined when nothing is checked.
 */
function hostCheck(
  hostGuard: HostGuard | undefined,
): ((header: string | string[] | undefined) => string | undefined) | undefined {
  // Entries compared as names: "plugin.internal:8080" or "[::1]" match too.
  const hosts = hostGuard && new Set(hostGuard.allowedHosts?.map((h) => hostName(h) ?? h));
  if (hosts === undefined || hosts.has("*")) return undefined;
  // The last Host header judged, and its verdict: a client sends the same
  // one on every call, and judging it (a regex, isIP) cost about 2% of a
  // network-mode plugin's CPU per unary call.
  let lastHost: string | string[] | undefined;
  let lastRefused: string | undefined;
  return (header) => {
    if (header !== lastHost || typeof header !== "string") {
      const host = hostName(header);
      lastRefused =
        host !== undefined && !isLoopbackHost(host) && !hosts.has(host) ? host : undefined;
      lastHost = header;
    }
    return lastRefused;
  };
}

function refuse(res: Response, origin: string, policy: CorsPolicy | undefined): void {
  const why =
    policy === undefined
      ? `this plugin allows no browser origins (configure cors in serve() or set ${CorsEnv.origins})`
      : `origin ${origin} is not in this plugin's allowed CORS origins`;
  res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(`${why}\n`);
}

/** Origins are compared as exact strings, so catch the spellings that never match. */
function checkOrigin(origin: string): void {
  if (origin === "*") return;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new Error(
      `invalid CORS origin ${JSON.stringify(origin)}: expected scheme://host[:port], e.g. "https://app.example.com"`,
    );
  }
  if (url.origin !== origin) {
    throw new Error(
      `invalid CORS origin ${JSON.stringify(origin)}: browsers send ${JSON.stringify(url.origin)} ` +
        `(scheme, host and port only, no path or trailing slash)`,
    );
  }
}

/** The host name of a Host header ("[::1]:8080" → "::1"), lower-cased. */
function hostName(header: string | string[] | undefined): string | undefined {
  if (typeof header !== "string" || header === "") return undefined;
  const match = /^\[([^\]]*)\](?::\d*)?$|^([^:]*)(?::\d*)?$/.exec(header);
  return (match?.[1] ?? match?.[2] ?? header).toLowerCase();
}

/** A comma-separated list from the environment (empty entries dropped). */
export function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function unique(names: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const name of names) if (!seen.has(name.toLowerCase())) seen.set(name.toLowerCase(), name);
  return [...seen.values()];
}
