import assert from "node:assert/strict";
import * as http from "node:http";
import { test } from "node:test";
import { cors as connectCors } from "@connectrpc/connect";
import { serve, type ServeHandle, type ServeOptions } from "../src/index.js";
import { CorsPolicy } from "../src/security/cors.js";
import { kvPlugin } from "../examples/kv/definition.js";

// CORS for network-mode plugins, over real HTTP with fetch (no browser; see
// browser.test.ts for Chromium).

const page = "http://127.0.0.1:5173";
const other = "http://127.0.0.1:6006";

async function withPlugin(
  options: ServeOptions,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const handle: ServeHandle = await serve(kvPlugin(), {
    listen: "127.0.0.1:0",
    exitProcess: false,
    ...options,
  });
  try {
    await body(handle.url);
  } finally {
    await handle.shutdown();
  }
}

const preflight = (url: string, origin: string): Promise<Response> =>
  fetch(`${url}/example.kv.v1.KV/Put`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,connect-protocol-version",
    },
  });

const put = (url: string, key: string, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${url}/example.kv.v1.KV/Put`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ key, value: btoa("v") }),
  });

const found = async (url: string, key: string): Promise<boolean> => {
  const res = await fetch(`${url}/example.kv.v1.KV/Get`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  return ((await res.json()) as { found?: boolean }).found === true;
};

test("CORS: an allowed origin's preflight gets 204 with the methods and headers Connect and gRPC-web need", async () => {
  await withPlugin({ cors: { allowedOrigins: [page], maxAgeSeconds: 600 } }, async (url) => {
    const res = await preflight(url, page);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), page);
    assert.equal(res.headers.get("vary"), "Origin");
    assert.equal(res.headers.get("access-control-allow-methods"), "POST, GET");
    const allowedHeaders = res.headers.get("access-control-allow-headers")?.split(", ") ?? [];
    for (const h of [...connectCors.allowedHeaders, "Authorization"]) {
      assert.ok(allowedHeaders.includes(h), `${h} in ${allowedHeaders.join(", ")}`);
    }
    assert.equal(res.headers.get("access-control-max-age"), "600");
  });
});

test("CORS: an allowed origin's call runs and exposes Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin", async () => {
  await withPlugin({ cors: { allowedOrigins: [page, other] } }, async (url) => {
    const res = await put(url, "from-page", { origin: other });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), other);
    const exposed = res.headers.get("access-control-expose-headers") ?? "";
    for (const h of ["Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"]) {
      assert.ok(exposed.includes(h), `${h} in ${exposed}`);
    }
    assert.ok(await found(url, "from-page"));
  });
});

test("CORS: Connect unary trailers (Trailer-* headers) are exposed too", async () => {
  // A Connect unary error sends no trailers, a success sends the handler's:
  // checked on the wrapper directly with a handler that sets one.
  const { createServer } = await import("node:http");
  const wrapped = CorsPolicy.wrap(new CorsPolicy({ allowedOrigins: [page] }), (_req, res) => {
    res.writeHead(200, { "trailer-request-id": "r1", "content-type": "application/json" });
    res.end("{}");
  });
  const server = createServer(wrapped);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, {
      method: "POST",
      headers: { origin: page },
    });
    const exposed = res.headers.get("access-control-expose-headers") ?? "";
    assert.match(exposed, /Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin/);
    assert.match(exposed, /trailer-request-id/);
  } finally {
    server.close();
  }
});

test("CORS: a disallowed origin gets no CORS headers, and its call is refused before it runs", async () => {
  await withPlugin({ cors: { allowedOrigins: [page] } }, async (url) => {
    const pre = await preflight(url, other);
    assert.equal(pre.status, 403);
    assert.equal(pre.headers.get("access-control-allow-origin"), null);
    const res = await put(url, "from-other", { origin: other });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    assert.equal(
      await res.text(),
      `origin ${other} is not in this plugin's allowed CORS origins\n`,
    );
    assert.equal(await found(url, "from-other"), false);
  });
});

test("CORS: with nothing configured no origin is allowed, and the refusal says how to allow one", async () => {
  await withPlugin({}, async (url) => {
    const res = await put(url, "k", { origin: page });
    assert.equal(res.status, 403);
    assert.equal(
      await res.text(),
      "this plugin allows no browser origins (configure cors in serve() or set CONNECT_PLUGIN_CORS_ORIGINS)\n",
    );
    assert.equal((await preflight(url, page)).status, 403);
    // Hosts and tools send no Origin and are unaffected.
    assert.equal((await put(url, "k")).status, 200);
    assert.ok(await found(url, "k"));
  });
});

test("CORS: a predicate decides per origin; '*' allows any", async () => {
  await withPlugin({ cors: { allowedOrigins: (o) => o.endsWith(":5173") } }, async (url) => {
    assert.equal((await preflight(url, page)).status, 204);
    assert.equal((await preflight(url, other)).status, 403);
  });
  await withPlugin({ cors: { allowedOrigins: ["*"] } }, async (url) => {
    const res = await preflight(url, other);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), other);
  });
});

test("CORS: CONNECT_PLUGIN_CORS_* configure a plugin binary without code", async () => {
  Object.assign(process.env, {
    CONNECT_PLUGIN_CORS_ORIGINS: ` ${page} , ${other}`,
    CONNECT_PLUGIN_CORS_HEADERS: "X-Api-Key",
    CONNECT_PLUGIN_CORS_MAX_AGE: "60",
  });
  try {
    await withPlugin({}, async (url) => {
      for (const origin of [page, other]) {
        const res = await preflight(url, origin);
        assert.equal(res.status, 204);
        assert.equal(res.headers.get("access-control-allow-origin"), origin);
        assert.match(res.headers.get("access-control-allow-headers") ?? "", /, X-Api-Key$/);
        assert.equal(res.headers.get("access-control-max-age"), "60");
      }
      assert.equal((await preflight(url, "http://127.0.0.1:1")).status, 403);
    });
  } finally {
    delete process.env.CONNECT_PLUGIN_CORS_ORIGINS;
    delete process.env.CONNECT_PLUGIN_CORS_HEADERS;
    delete process.env.CONNECT_PLUGIN_CORS_MAX_AGE;
  }
  assert.equal(CorsPolicy.fromEnv({}), undefined);
  assert.equal(CorsPolicy.fromEnv({ CONNECT_PLUGIN_CORS_ORIGINS: " , " }), undefined);
});

test("CORS: origins that could never match, and bad settings, fail with a clear message", () => {
  const bad: Array<[unknown, RegExp]> = [
    [
      { allowedOrigins: ["https://app.example.com/"] },
      /invalid CORS origin "https:\/\/app.example.com\/": browsers send "https:\/\/app.example.com" \(scheme, host and port only, no path or trailing slash\)/,
    ],
    [
      { allowedOrigins: ["app.example.com"] },
      /invalid CORS origin "app.example.com": expected scheme:\/\/host\[:port\]/,
    ],
    [
      { allowedOrigins: ["https://app.example.com:443"] },
      /browsers send "https:\/\/app.example.com"/,
    ],
    [{ allowedOrigins: [page], maxAgeSeconds: -1 }, /maxAgeSeconds must be a whole number/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => new CorsPolicy(options as never), message);
  }
  assert.throws(
    () => CorsPolicy.fromEnv({ CONNECT_PLUGIN_CORS_ORIGINS: "http://127.0.0.1:5173/app" }),
    /^Error: CONNECT_PLUGIN_CORS_ORIGINS\/CONNECT_PLUGIN_CORS_MAX_AGE: invalid CORS origin/,
  );
  assert.throws(
    () =>
      CorsPolicy.fromEnv({
        CONNECT_PLUGIN_CORS_ORIGINS: page,
        CONNECT_PLUGIN_CORS_MAX_AGE: "an hour",
      }),
    /maxAgeSeconds must be a whole number of seconds ≥ 0, got NaN/,
  );
});

test("CORS: serve() rejects a bad cors option before it listens", async () => {
  await assert.rejects(
    serve(kvPlugin(), {
      listen: "127.0.0.1:0",
      exitProcess: false,
      cors: { allowedOrigins: ["*.example.com"] },
    }),
    /invalid CORS origin "\*.example.com"/,
  );
});

/** A raw HTTP/1.1 request, so that Host and Sec-Fetch-Site can be set as a browser would. */
function rawGet(
  url: string,
  headers: Record<string, string>,
  path = "/example.kv.v1.KV/Get?encoding=json&message=%7B%7D",
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: hostname,
        port,
        method: "GET",
        path,
        headers,
      },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

test("CORS: a cross-site browser request without Origin (a no-cors GET) is refused; same-origin and non-browser ones are not", async () => {
  await withPlugin({}, async (url) => {
    for (const site of ["cross-site", "same-site"]) {
      const res = await rawGet(url, { "sec-fetch-site": site });
      assert.equal(res.status, 403);
      assert.equal(res.body, `a ${site} browser request without an Origin header is refused\n`);
    }
    const fine: Record<string, string>[] = [
      { "sec-fetch-site": "same-origin" },
      { "sec-fetch-site": "none" },
      {},
    ];
    for (const headers of fine) {
      const res = await rawGet(url, headers);
      assert.notEqual(res.status, 403, JSON.stringify(headers));
    }
  });
});

test("DNS rebinding: a loopback plugin refuses a Host that is not a loopback name, unless allowed", async () => {
  await withPlugin({}, async (url) => {
    const res = await rawGet(url, { host: "evil.example:80" });
    assert.equal(res.status, 403);
    assert.equal(
      res.body,
      'Host "evil.example" refused: this plugin listens on loopback and answers only loopback names ' +
        "(a guard against DNS rebinding); add the name to CONNECT_PLUGIN_ALLOWED_HOSTS or serve()'s allowedHosts\n",
    );
    for (const host of ["localhost:1", "127.0.0.1", "127.1.2.3:9", "[::1]:80"]) {
      assert.notEqual((await rawGet(url, { host })).status, 403, host);
    }
  });
  await withPlugin({ allowedHosts: ["plugin.internal", "Other.Internal:8080"] }, async (url) => {
    assert.notEqual((await rawGet(url, { host: "plugin.internal:8080" })).status, 403);
    // An entry written with a port, or in capitals, still names its host.
    assert.notEqual((await rawGet(url, { host: "other.internal:9" })).status, 403);
    assert.equal((await rawGet(url, { host: "evil.example" })).status, 403);
  });
  await withPlugin({ allowedHosts: ["*"] }, async (url) => {
    assert.notEqual((await rawGet(url, { host: "evil.example" })).status, 403);
  });
});

test("DNS rebinding: the Host verdict is judged per request and per server (two plugins in one process, different allowedHosts, interleaved)", async () => {
  await withPlugin({ allowedHosts: ["a.internal"] }, async (a) => {
    await withPlugin({ allowedHosts: ["b.internal"] }, async (b) => {
      const status = async (url: string, host: string): Promise<number> =>
        (await rawGet(url, { host })).status;
      for (let round = 0; round < 2; round++) {
        assert.notEqual(await status(a, "a.internal"), 403);
        assert.equal(await status(b, "a.internal"), 403, "b refuses a's name after a let it in");
        assert.notEqual(await status(b, "b.internal"), 403);
        assert.equal(await status(a, "b.internal"), 403, "a refuses b's name after b let it in");
        // One server: refused, allowed, refused, the same name twice in a row.
        assert.equal(await status(a, "evil.example"), 403);
        assert.equal(await status(a, "evil.example"), 403);
        assert.notEqual(await status(a, "127.0.0.1"), 403);
        assert.equal(await status(a, "evil.example:81"), 403);
        assert.notEqual(await status(a, "a.internal:9"), 403);
      }
    });
  });
});

test("DNS rebinding: a Host with an IPv6 zone id is judged by its address and never breaks the plugin", async () => {
  await withPlugin({}, async (url) => {
    // The zone holds '::' and reads as a ninth group (a RangeError killed the process).
    const odd = await rawGet(url, { host: "[0:0:0:0:0:0:0:2%::1]:80" });
    assert.equal(odd.status, 403);
    assert.match(odd.body, /^Host "0:0:0:0:0:0:0:2%::1" refused/);
    // :: with a zone that spells ":1" is not ::1.
    assert.equal((await rawGet(url, { host: "[::0%0:1]" })).status, 403);
    assert.notEqual((await rawGet(url, { host: "[::1%lo]:80" })).status, 403);
    assert.equal(await found(url, "absent"), false, "the plugin still serves");
  });
});

test("DNS rebinding: /metrics is behind the same Host and browser checks as the RPCs", async () => {
  const metrics = (_req: unknown, res: http.ServerResponse): void => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("rpc_calls_total 7\n");
  };
  await withPlugin({ metrics: metrics as ServeOptions["metrics"] }, async (url) => {
    const scraped = await rawGet(url, {}, "/metrics");
    assert.equal(scraped.status, 200);
    assert.equal(scraped.body, "rpc_calls_total 7\n");
    const rebound = await rawGet(url, { host: "evil.example" }, "/metrics");
    assert.equal(rebound.status, 403);
    assert.match(rebound.body, /^Host "evil.example" refused/);
    const crossSite = await rawGet(url, { "sec-fetch-site": "cross-site" }, "/metrics");
    assert.equal(crossSite.status, 403);
  });
});
