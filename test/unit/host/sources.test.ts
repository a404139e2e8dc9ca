/**
 * The source policy: what each `PluginSource` builder returns (defaults
 * included), and which remote sources are refused before anything is sent,
 * with the user's message word for word. The same rules as the integration
 * tests, without starting a plugin.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { StaticDiscovery, staticEndpoints } from "../../../src/discovery/discovery.js";
import {
  checkRemoteSource,
  cluster,
  inProcess,
  reattach,
  remote,
  subprocess,
  type RemoteSource,
} from "../../../src/host/sources.js";
import { PluginError } from "../../../src/protocol/errors.js";
import type { PluginDefinition } from "../../../src/protocol/plugin-set.js";
import type { ReattachConfig } from "../../../src/protocol/reattach.js";

function refuses(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.equal(e.message, message);
    return true;
  });
}

const plaintextRefused = (host: string): string =>
  `refusing plaintext http:// to non-loopback host ${host}: use https://, ` +
  `or pass { allowPlaintext: true } if the network is trusted`;

describe("subprocess()", () => {
  test("a bare command has no arguments and no options", () => {
    assert.deepEqual(subprocess("node"), { kind: "subprocess", command: "node", args: [] });
  });

  test("arguments and every option are kept as given", () => {
    const options = {
      env: { A: "1" },
      cwd: "/srv/plugin",
      autoMTLS: false,
      transports: ["connect"] as const,
      limits: { memoryBytes: 64 << 20, cpuSeconds: 10, openFiles: 64 },
    };
    assert.deepEqual(subprocess("./kv", ["--serve"], options), {
      kind: "subprocess",
      command: "./kv",
      args: ["--serve"],
      ...options,
    });
  });

  test("a resource limit that is not a whole number of at least 1 is refused at once", () => {
    assert.throws(() => subprocess("./kv", [], { limits: { cpuSeconds: 0 } }), {
      message: "resource limit cpuSeconds must be a whole number ≥ 1, got 0",
    });
    assert.throws(() => subprocess("./kv", [], { limits: { openFiles: 2.5 } }), {
      message: "resource limit openFiles must be a whole number ≥ 1, got 2.5",
    });
  });
});

describe("remote()", () => {
  test("defaults: Connect over HTTP/2, the framed protocol when the server speaks it, no plaintext consent", () => {
    assert.deepEqual(remote("http://127.0.0.1:8080"), {
      kind: "remote",
      url: new URL("http://127.0.0.1:8080/"),
      protocol: "connect",
      httpVersion: "2",
      allowPlaintext: false,
      transport: "auto",
    });
    const url = new URL("https://kv.internal:8443/base");
    assert.deepEqual(remote(url).url, url, "a URL object is taken as well");
  });

  test("naming a protocol or an HTTP version means the HTTP path, unless a transport is given", () => {
    assert.equal(remote("http://127.0.0.1:1", { protocol: "grpc" }).transport, "http");
    assert.equal(remote("http://127.0.0.1:1", { httpVersion: "1.1" }).transport, "http");
    assert.equal(
      remote("http://127.0.0.1:1", { protocol: "grpc", transport: "framed" }).transport,
      "framed",
    );
    assert.equal(remote("http://127.0.0.1:1", { transport: "http" }).transport, "http");
    const s = remote("http://127.0.0.1:1", { protocol: "grpc-web", httpVersion: "1.1" });
    assert.deepEqual([s.protocol, s.httpVersion, s.transport], ["grpc-web", "1.1", "http"]);
  });

  test("TLS options are kept for https://", () => {
    const tls = { ca: "CA PEM", cert: "CERT PEM", key: "KEY PEM" };
    const s = remote("https://kv.internal:8443", { tls });
    assert.equal(s.tls, tls);
    assert.equal(s.allowPlaintext, false);
  });

  test("TLS options for an http:// URL are refused: they would be silently unused", () => {
    refuses(
      () => remote("http://127.0.0.1:9000", { tls: { ca: "CA PEM" } }),
      "TLS options were given for http://127.0.0.1:9000/, which is not https://",
    );
    refuses(
      () => remote("http://kv.internal", { tls: {}, allowPlaintext: true }),
      "TLS options were given for http://kv.internal/, which is not https://",
    );
  });

  test("a URL's password is in neither refusal (user info is sent as Basic auth, never shown)", () => {
    refuses(
      () => remote("http://user:s3cret@127.0.0.1:9000", { tls: { ca: "CA PEM" } }),
      "TLS options were given for http://127.0.0.1:9000/, which is not https://",
    );
    refuses(
      () => remote("ftp://user:s3cret@127.0.0.1/kv"),
      "remote plugin URL must be http:// or https://, got ftp://127.0.0.1/kv",
    );
  });

  test("only http:// and https:// URLs", () => {
    refuses(
      () => remote("ftp://127.0.0.1/kv"),
      "remote plugin URL must be http:// or https://, got ftp://127.0.0.1/kv",
    );
    refuses(
      () => remote("unix:///tmp/kv.sock"),
      "remote plugin URL must be http:// or https://, got unix:///tmp/kv.sock",
    );
  });

  test("plaintext to a real network is refused unless the user opts in; https:// always goes", () => {
    refuses(() => remote("http://kv.internal:8080"), plaintextRefused("kv.internal"));
    refuses(() => remote("http://10.1.2.3"), plaintextRefused("10.1.2.3"));
    assert.equal(remote("http://kv.internal:8080", { allowPlaintext: true }).allowPlaintext, true);
    assert.equal(remote("https://kv.internal:8443").url.protocol, "https:");
    assert.equal(remote("https://10.1.2.3").transport, "auto");
  });
});

describe("checkRemoteSource()", () => {
  const base: RemoteSource = {
    kind: "remote",
    url: new URL("http://127.0.0.1:1"),
    protocol: "connect",
    httpVersion: "2",
    allowPlaintext: false,
  };

  test("a hand-built source gets the same checks as remote()", () => {
    checkRemoteSource(base);
    checkRemoteSource({ ...base, url: new URL("https://kv.internal"), tls: { ca: "x" } });
    refuses(
      () => checkRemoteSource({ ...base, url: new URL("http://kv.internal") }),
      plaintextRefused("kv.internal"),
    );
    refuses(
      () => checkRemoteSource({ ...base, url: new URL("ws://127.0.0.1:1") }),
      "remote plugin URL must be http:// or https://, got ws://127.0.0.1:1/",
    );
    refuses(
      () => checkRemoteSource({ ...base, tls: {} }),
      "TLS options were given for http://127.0.0.1:1/, which is not https://",
    );
  });
});

describe("reattach()", () => {
  const config: ReattachConfig = {
    Protocol: "grpc",
    ProtocolVersion: 1,
    Pid: 4242,
    Test: true,
    Addr: { Network: "unix", String: "/tmp/plugin/kv.sock" },
  };

  test("takes a parsed config as it is, or the debug-mode line", () => {
    assert.deepEqual(reattach(config), { kind: "reattach", config });
    assert.deepEqual(reattach(`CONNECT_PLUGIN_REATTACH=${JSON.stringify(config)}\n`), {
      kind: "reattach",
      config,
    });
    assert.deepEqual(reattach(JSON.stringify(config)).config, config);
  });

  test("a line that is not a config is refused with the parser's message", () => {
    assert.throws(
      () => reattach("CONNECT_PLUGIN_REATTACH=oops"),
      (e: unknown) =>
        e instanceof PluginError && e.message === 'reattach config is not JSON: "oops"',
    );
  });
});

describe("inProcess() and cluster()", () => {
  const definition: PluginDefinition = {
    handshake: { magicCookieKey: "K", magicCookieValue: "V", protocolVersion: 1 },
  };

  test("inProcess keeps the definition and the options given, and adds none", () => {
    assert.deepEqual(inProcess(definition), { kind: "in-process", definition });
    assert.equal(inProcess(definition).definition, definition);
    assert.deepEqual(inProcess(definition, { mode: "serialize", interceptors: [] }), {
      kind: "in-process",
      definition,
      mode: "serialize",
      interceptors: [],
    });
  });

  test("a list of URLs becomes a static discovery of those instances", async () => {
    const source = cluster(["http://127.0.0.1:8081", "http://127.0.0.1:8082/"]);
    assert.deepEqual(Object.keys(source).sort(), ["discovery", "kind"]);
    assert.equal(source.kind, "cluster");
    assert.ok(source.discovery instanceof StaticDiscovery);
    assert.deepEqual(await source.discovery.discover(), [
      { id: "127.0.0.1:8081", url: "http://127.0.0.1:8081" },
      { id: "127.0.0.1:8082", url: "http://127.0.0.1:8082" },
    ]);
  });

  test("options with a discovery are kept as given", () => {
    const discovery = staticEndpoints(["http://127.0.0.1:8081"]);
    const source = cluster({ discovery, balancer: "round-robin", negotiation: false });
    assert.deepEqual(source, {
      kind: "cluster",
      discovery,
      balancer: "round-robin",
      negotiation: false,
    });
    assert.equal(source.discovery, discovery);
  });
});
