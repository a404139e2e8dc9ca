/**
 * The plugin-side TLS listener (tls-listener.ts) with a pinned client
 * certificate (AutoMTLS), on every server path that makes one: the framed
 * listener, and network mode's port with framed ALPN, HTTP/2 only, and
 * HTTP/1.1. Real TLS sockets on real servers; the clients are ours (framed,
 * HTTP/2, HTTP/1.1) and a Go client (go/cmd/tls-wrong-key) for a
 * certificate sent with a key that is not its own. Only the pinned
 * certificate gets an answer; every other client is cut off before its
 * request is read (the handler never runs), with an error that says so.
 */
import { execFile, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import nodeTls from "node:tls";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { KV } from "../../../examples/kv/gen/example/kv/v1/kv_pb.js";
import { generateAutoMtlsCertificate } from "../../../src/security/auto-mtls.js";
import { createFramedTransport } from "../../../src/transport/framed/client.js";
import { createNetworkTransport } from "../../../src/transport/framed/network.js";
import { FramedServer } from "../../../src/transport/framed/server.js";
import { PluginHttpServer } from "../../../src/transport/http-server.js";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import { createTlsListener } from "../../../src/transport/tls-listener.js";
import { goBinaries, removeGoBinaries } from "../../go-build.js";
import { makeTestPki, signedBy } from "../../helpers.js";

/** A client's TLS: its certificate and key (none: no client certificate). */
interface Client {
  readonly cert?: string;
  readonly key?: string;
}

let dir: string;
let serverCert: { cert: string; key: string; ca: string };
let clients: Record<"none" | "stranger" | "signedByHost" | "sameKey" | "pinned", Client>;
let wrongKey: string;
let handled = 0;
const cutOff: string[] = [];

const routes = (router: ConnectRouter): void => {
  router.service(KV, {
    get: () => {
      handled++;
      return { found: true, value: new Uint8Array([1]) };
    },
  });
};

before(async () => {
  dir = makeTestPki("cptl-");
  const read = (f: string): string => readFileSync(join(dir, f), "utf8");
  serverCert = { cert: read("server.crt"), key: read("server.key"), ca: read("ca.crt") };
  // The host's AutoMTLS certificate (self-signed, a CA as go-plugin makes it).
  const host = generateAutoMtlsCertificate("P-256");
  const stranger = generateAutoMtlsCertificate("P-256");
  writeFileSync(join(dir, "host.crt"), host.certPem);
  writeFileSync(join(dir, "host.key"), host.keyPem);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  };
  // The host's own key in another certificate (self-signed, another serial).
  openssl(
    "req",
    "-x509",
    "-key",
    "host.key",
    "-out",
    "same-key.crt",
    "-subj",
    "/O=HashiCorp/CN=localhost",
    "-days",
    "1",
  );
  clients = {
    none: {},
    stranger: { cert: stranger.certPem, key: stranger.keyPem },
    // Chains to the host's certificate: verifying with it as the CA took it.
    signedByHost: (({ certPem, keyPem }) => ({ cert: certPem, key: keyPem }))(signedBy(host)),
    sameKey: { cert: read("same-key.crt"), key: host.keyPem },
    pinned: { cert: host.certPem, key: host.keyPem },
  };
  // The host's certificate with the stranger's key.
  writeFileSync(join(dir, "stranger.key"), stranger.keyPem);
  wrongKey = (
    await goBinaries({
      wrongKey: "github.com/connect-plugin/connect-plugin/go/cmd/tls-wrong-key",
    })
  ).wrongKey;
});
after(() => removeGoBinaries());

/** Each server path: how to start it, and how a client with `tls` makes one call to it. */
interface Path {
  readonly name: string;
  /** The ALPN protocol the Go client asks for, if any. */
  readonly alpn?: string;
  /** What a refused client's call fails with. */
  readonly refused: RegExp;
  start(): Promise<{ address: string; close(): Promise<void> }>;
  call(address: string, tls: Client): Promise<void>;
}

const tlsOf = (client: Client) => ({ ca: serverCert.ca, ...client });
const pinned = () => ({
  cert: serverCert.cert,
  key: serverCert.key,
  clientCert: clients.pinned.cert,
});

async function callOnce(transport: {
  transport: Parameters<typeof createClient>[1];
  close(): void;
}): Promise<void> {
  try {
    await createClient(KV, transport.transport).get({ key: "k" }, { timeoutMs: 20_000 });
  } finally {
    transport.close();
  }
}

/** Network mode's port: PluginHttpServer with TLS, optionally framed ALPN and HTTP/1.1. */
function networkPath(
  name: string,
  options: { framed: boolean; acceptHttp1: boolean; alpn: string; httpVersion?: "1.1" | "2" },
  refused = UNAVAILABLE_CLOSED,
): Path {
  return {
    name,
    alpn: options.alpn,
    refused,
    async start() {
      const framed = options.framed
        ? FramedServer.detached(routes, { onPeerCutOff: (r) => cutOff.push(r) })
        : undefined;
      const server = await PluginHttpServer.listen(
        createNodeAdapter({ routes }),
        { network: "tcp", host: "127.0.0.1", port: 0 },
        {
          acceptHttp1: options.acceptHttp1,
          tls: pinned(),
          onPeerCutOff: (r) => cutOff.push(r),
          ...(framed !== undefined && { framed }),
        },
      );
      return { address: server.bound.address, close: () => server.close(0) };
    },
    call: (address, tls) =>
      callOnce(
        createNetworkTransport(new URL(`https://${address}`), {
          transport: options.httpVersion === undefined ? "framed" : "http",
          ...(options.httpVersion !== undefined && { httpVersion: options.httpVersion }),
          tls: tlsOf(tls),
        }),
      ),
  };
}

/** A refusal as the HTTP/2 client reports it. */
const UNAVAILABLE_CLOSED = /^Unavailable: .*clos/;
/** A refusal as the framed client reports it: closed (or reset) before any frame, with the likely reason. */
const FRAMED_REFUSED =
  /^Unavailable: .*(closed the connection|ECONNRESET|EPIPE) before it sent any frame \(with TLS: does it accept this client's certificate\?\)$/;

const paths: Path[] = [
  {
    name: "framed listener (a launched plugin's socket)",
    refused: FRAMED_REFUSED,
    async start() {
      const server = await FramedServer.listen(
        routes,
        { network: "unix", path: join(dir, `f${Math.random().toString(36).slice(2, 8)}.sock`) },
        { tls: pinned(), onPeerCutOff: (r) => cutOff.push(r) },
      );
      return { address: `unix:${server.bound.address}`, close: () => server.close(0) };
    },
    call: (address, tls) =>
      callOnce(
        createFramedTransport(
          { network: "unix", address: address.slice("unix:".length) },
          { tls: tlsOf(tls) },
        ),
      ),
  },
  networkPath(
    "network mode, framed by ALPN",
    { framed: true, acceptHttp1: true, alpn: "connect-plugin-framed/1" },
    FRAMED_REFUSED,
  ),
  networkPath("network mode, HTTP/2 only (go-plugin side, broker)", {
    framed: false,
    acceptHttp1: false,
    alpn: "h2",
    httpVersion: "2",
  }),
  networkPath(
    "network mode, HTTP/1.1",
    { framed: true, acceptHttp1: true, alpn: "http/1.1", httpVersion: "1.1" },
    // Node reports the close as "socket hang up", which was reported as
    // Aborted (the host's own abort) until session 22.
    /^Unavailable: the plugin closed the connection before it sent any HTTP\/1\.1 response \(with TLS: does it accept this client's certificate\?\)$/,
  ),
];

/** What a call with `tls` came to: "answered", or the error's code and message. */
async function outcome(path: Path, address: string, tls: Client): Promise<string> {
  try {
    await path.call(address, tls);
    return "answered";
  } catch (error) {
    const e = ConnectError.from(error);
    return `${Code[e.code]}: ${e.rawMessage}`;
  }
}

for (const path of paths) {
  describe(`pinned client certificate: ${path.name}`, () => {
    let server: { address: string; close(): Promise<void> };
    before(async () => {
      server = await path.start();
    });
    after(() => server.close());

    test("the pinned certificate is answered", async () => {
      const before = handled;
      assert.equal(await outcome(path, server.address, clients.pinned), "answered");
      assert.equal(handled, before + 1);
    });

    for (const [who, why] of [
      ["none", "no certificate"],
      ["stranger", "a stranger's self-signed certificate"],
      ["signedByHost", "a certificate the host's key signed"],
      ["sameKey", "another certificate of the host's key"],
    ] as const) {
      test(`${why} is cut off after the handshake, before any request byte`, async () => {
        const handledBefore = handled;
        const logged = cutOff.length;
        const result = await outcome(path, server.address, clients[who]);
        assert.match(result, path.refused);
        assert.equal(handled, handledBefore, "the handler never ran");
        const reason = cutOff.slice(logged).join("\n");
        assert.match(
          reason,
          who === "none"
            ? /refused: the client presented no certificate/
            : /refused: the client's certificate \(.*\) is not the host's/,
        );
      });
    }

    test("over TLS 1.2 too, a refused client sees the connection closed, not its handshake cut", async () => {
      // In TLS 1.2 the server's Finished is still queued when the server
      // sees the handshake done: destroying the socket then discarded it,
      // and the client failed with "Client network socket disconnected
      // before secure TLS connection was established" (Aborted over HTTP/2).
      const handledBefore = handled;
      const max = nodeTls.DEFAULT_MAX_VERSION;
      nodeTls.DEFAULT_MAX_VERSION = "TLSv1.2";
      try {
        assert.equal(await outcome(path, server.address, clients.pinned), "answered");
        for (const who of ["none", "stranger"] as const) {
          assert.match(await outcome(path, server.address, clients[who]), path.refused, who);
        }
      } finally {
        nodeTls.DEFAULT_MAX_VERSION = max;
      }
      assert.equal(handled, handledBefore + 1, "the handler ran for the pinned client only");
    });

    test("the pinned certificate with another key: TLS refuses it (a Go client, which sends such a pair)", async () => {
      const handledBefore = handled;
      const result = await new Promise<{ stage: string; error?: string }>((resolve) => {
        execFile(
          wrongKey,
          [
            server.address,
            join(dir, "host.crt"),
            join(dir, "stranger.key"),
            ...(path.alpn !== undefined ? [path.alpn] : []),
          ],
          { timeout: 30_000 },
          (_error, stdout) =>
            resolve(
              JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as {
                stage: string;
                error?: string;
              },
            ),
        );
      });
      assert.notEqual(result.stage, "answered", JSON.stringify(result));
      // The server's alert (the CertificateVerify signature does not match the
      // certificate), or, when the server's close reaches the client's first
      // write before the alert is read, a broken pipe or reset (1 run in ~20).
      assert.match(
        result.error ?? "",
        /remote error: tls: |broken pipe|connection reset by peer/,
        JSON.stringify(result),
      );
      assert.equal(handled, handledBefore, "the handler never ran");
    });
  });
}

describe("a cleartext client (http://) at a TLS port", () => {
  let server: { address: string; close(): Promise<void> };
  before(async () => {
    server = await networkPath("network mode, framed by ALPN", {
      framed: true,
      acceptHttp1: true,
      alpn: "connect-plugin-framed/1",
    }).start();
  });
  after(() => server.close());

  for (const [transport, httpVersion, pattern] of [
    [
      "http",
      "2",
      /^Unavailable: the plugin closed the connection before it sent any HTTP\/2 frame \(in cleartext: if the plugin serves TLS, its URL is https:\/\/\)$/,
    ],
    [
      "http",
      "1.1",
      /^Unavailable: the plugin closed the connection before it sent any HTTP\/1\.1 response \(in cleartext: if the plugin serves TLS, its URL is https:\/\/\)$/,
    ],
    [
      "framed",
      undefined,
      /^Unavailable: http:\/\/127\.0\.0\.1:\d+ does not speak the framed protocol \(it closed the connection without answering the framed preface; if the plugin serves TLS, its URL is https:\/\/\); use transport "auto" to fall back to HTTP, or "http"$/,
    ],
  ] as const) {
    test(`over ${transport === "framed" ? "the framed protocol" : `HTTP/${httpVersion}`}, is told to use https://`, async () => {
      const handledBefore = handled;
      let result = "answered";
      try {
        await callOnce(
          createNetworkTransport(new URL(`http://${server.address}`), {
            transport,
            ...(httpVersion !== undefined && { httpVersion }),
          }),
        );
      } catch (error) {
        const e = ConnectError.from(error);
        result = `${Code[e.code]}: ${e.rawMessage}`;
      }
      assert.match(result, pattern);
      assert.equal(handled, handledBefore, "the handler never ran");
    });
  }
});

test("a framed TLS client that does not trust the plugin's certificate is not asked whether the plugin accepts its own", async () => {
  // This side's verdict on the plugin's certificate, not the plugin's on
  // this client's: the framed hint for a reset before any frame must not come.
  const server = await FramedServer.listen(
    routes,
    { network: "unix", path: join(dir, `u${Math.random().toString(36).slice(2, 8)}.sock`) },
    { tls: pinned() },
  );
  try {
    const handledBefore = handled;
    let result = "answered";
    try {
      await callOnce(
        createFramedTransport(
          { network: "unix", address: server.bound.address },
          // The host's own certificate as the CA: the server's does not chain to it.
          { tls: { ...clients.pinned, ca: clients.pinned.cert as string } },
        ),
      );
    } catch (error) {
      const e = ConnectError.from(error);
      result = `${Code[e.code]}: ${e.rawMessage}`;
    }
    assert.match(result, /^Unavailable: connection to the plugin failed: .*certificate/);
    assert.doesNotMatch(result, /does it accept this client's certificate/);
    assert.equal(handled, handledBefore, "the handler never ran");
  } finally {
    await server.close(0);
  }
});

test("clientCert and clientCa together are refused at start, with what to give instead", () => {
  assert.throws(
    () =>
      createTlsListener(
        {
          cert: serverCert.cert,
          key: serverCert.key,
          clientCert: clients.pinned.cert,
          clientCa: serverCert.ca,
          handshakeTimeoutMs: 1_000,
        },
        () => {},
      ),
    /give clientCert \(the one certificate accepted\) or clientCa \(the CA that signs accepted certificates\), not both/,
  );
});
