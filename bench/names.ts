/**
 * The names of `npm run bench`'s scenarios and of the contenders its targets
 * compare: rows are found by these strings, in a run and in the JSON files of
 * earlier runs (docs/bench-results*.json), so a rename is a format change.
 */

/** Every ratio column is against these two rows of the same scenario. */
export const GO_PLUGIN = "go-plugin (Go host, Go plugin, gRPC)";
export const FLOOR = "raw unix socket ping-pong (floor)";
/** Scenario 2's concurrency. */
export const CALLERS = 64;
/** Scenario 7's number of plugins. */
export const PLUGINS = 50;

export const S = {
  unary: "1. unary 16 B, sequential",
  concurrent: `2. unary 16 B, ${CALLERS} concurrent callers`,
  big: "3. unary 1 MiB",
  stream: "4. server streaming, 16 B messages",
  cold: "5. cold start: spawn to first call",
  inproc: "6. in-process call",
  rss: `7. host RSS per extra subprocess plugin (${PLUGINS} running)`,
  pss: "8. plugin (or server) process PSS after the run, MB",
  anon: "9. plugin (or server) process anonymous memory after the run, MB",
} as const;
/** Scenario 1 again, with host and plugin pinned as the label says. */
export const PINNED_PREFIX = `${S.unary}, pinned: `;

export const CP_FRAMED = "connect-plugin subprocess, unix socket, framed + AutoMTLS (default)";
export const CP_FRAMED_PLAIN = "connect-plugin subprocess, unix socket, framed, autoMTLS: false";
export const CP_H2 = "connect-plugin subprocess, unix socket, Connect over HTTP/2";
/** The row above without TLS: like for like with the cleartext HTTP/2 floor. */
export const CP_H2_PLAIN =
  "connect-plugin subprocess, unix socket, Connect over HTTP/2, autoMTLS: false";
export const CP_REMOTE = "connect-plugin remote, loopback TCP, Connect over HTTP/2";
export const CP_REMOTE_GRPC = "connect-plugin remote, loopback TCP, gRPC over HTTP/2";
export const CP_REMOTE_FRAMED = "connect-plugin remote, loopback TCP, framed";
export const CP_REMOTE_FRAMED_TLS = "connect-plugin remote, loopback TCP, framed + TLS";
/**
 * connect-plugin's Node host calling a Go plugin written with connect-go
 * (go/bench/connectgo) as a remote service, Connect over HTTP/2 cleartext on
 * loopback TCP: the path a plugin in another language takes (bench/connect-go.ts).
 */
export const CG_REMOTE = "connect-go plugin (Go), remote, HTTP/2";
export const H2_FLOOR = "raw node:http2 (HTTP/2 floor)";
/**
 * The same floor over loopback TCP: the remote rows run over TCP, whose
 * system calls cost both ends more than a unix socket's, so they are judged
 * against this one (docs/http2-client.md, 2026-12-02).
 */
export const H2_FLOOR_TCP = "raw node:http2, loopback TCP (HTTP/2 floor of the TCP rows)";
export const CP_HOST_GO_PLUGIN = "connect-plugin host (GoPluginClient) → Go go-plugin plugin, gRPC";
export const GO_HOST_CP_PLUGIN = "go-plugin Go host → connect-plugin Node plugin, gRPC";
export const GO_PLUGIN_MTLS = "go-plugin (Go host, Go plugin, gRPC + AutoMTLS)";
export const CP_DIRECT = "connect-plugin in process (direct)";
export const CP_SERIALIZE = "connect-plugin in process (serialize)";
export const PLAIN_CALL = "plain async function call (floor)";

export const COLD_PLAIN = "connect-plugin, Node plugin (framed)";
export const COLD_BUNDLED = "connect-plugin, Node plugin bundled by esbuild (framed)";
export const COLD_SNAPSHOT = "connect-plugin, Node plugin from a V8 startup snapshot (framed)";
export const COLD_CODE_CACHE =
  "connect-plugin, Node plugin bundled as CommonJS with V8's code cache, as the scaffold builds it (framed)";
export const NODE_BOOT = "reference: node -e 0 (Node's own boot, no plugin)";
export const HOST_RSS_FRAMED = "connect-plugin, Node plugins (framed)";
