import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { bearerAuth, remote } from "../src/index.js";
import { bundlePage } from "../examples/browser/bundle.js";
import { launchBrowserPlugin, type RunningPlugin } from "../examples/browser/launch-plugin.js";
import { serveDemoPage } from "../examples/browser/static-server.js";
import { launchChromium, screenshotPath } from "./chromium.js";
import { decode, kvClient, tempDir } from "./helpers.js";
import { CorsPolicy } from "../src/security/cors.js";
import { PluginHttpServer } from "../src/transport/http-server.js";
import { createNodeAdapter } from "../src/transport/node-adapter.js";
import {
  commandRoutes,
  envelope,
  grpcWebTrailerOf,
  message,
  type HandlerSeen,
} from "./unit/transport/command-routes.js";

// The example page (examples/browser) in Debian's headless Chromium, calling
// the KV plugin in its own process from other origins.

const token = "browser-test-token";
let plugin: RunningPlugin;
let allowed: Awaited<ReturnType<typeof serveDemoPage>>;
let refused: Awaited<ReturnType<typeof serveDemoPage>>;
let browser: BrowserContext;

before(async () => {
  const bundleDir = tempDir("browser-bundle-");
  await bundlePage(bundleDir);
  const config = () => ({ pluginUrl: plugin.url, token });
  allowed = await serveDemoPage(bundleDir, config);
  refused = await serveDemoPage(bundleDir, config);
  plugin = await launchBrowserPlugin([allowed.origin], token);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await plugin?.stop();
  await Promise.all([allowed?.close(), refused?.close()]);
});

interface Row {
  protocol: string;
  call: string;
  state: string;
  result: string;
}

/** Opens the page and waits until every call on it has finished. */
async function runPage(
  origin: string,
  consoleErrors: string[] = [],
): Promise<{ page: Page; rows: Row[] }> {
  const page = await browser.newPage();
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  await page.goto(`${origin}/`);
  await page.waitForSelector('body[data-state="done"]', { timeout: 45_000 });
  const rows: Row[] = [];
  for (const tr of await page.locator("tr[data-call]").all()) {
    rows.push({
      protocol: (await tr.getAttribute("data-protocol")) ?? "",
      call: (await tr.getAttribute("data-call")) ?? "",
      state: (await tr.getAttribute("data-state")) ?? "",
      result: (await tr.locator("td.result").textContent()) ?? "",
    });
  }
  return { page, rows };
}

/** What the plugin's store holds under `key`, read by a host (no Origin header). */
async function storedValue(key: string): Promise<string | undefined> {
  const client = kvClient(remote(plugin.url, { protocol: "connect" }), {
    interceptors: [bearerAuth(token)],
  });
  await client.start();
  try {
    const got = await client.dispense("kv").get({ key });
    return got.found ? decode(got.value) : undefined;
  } finally {
    await client.close();
  }
}

test("a page on an allowed origin calls the plugin over Connect and gRPC-web: unary, server streaming, bearer auth", async () => {
  const { page, rows } = await runPage(allowed.origin);
  const file = screenshotPath("browser-allowed.png");
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(statSync(file).size > 1_000, "screenshot written");
  await page.close();

  assert.deepEqual(
    rows.map((r) => `${r.protocol} | ${r.call} | ${r.state}`),
    ["connect", "grpc-web"].flatMap((p) => [
      `${p} | unary Put + Get | ok`,
      `${p} | server stream Watch | ok`,
      `${p} | unary Get without token | ok`,
    ]),
    JSON.stringify(rows, null, 1),
  );
  for (const protocol of ["connect", "grpc-web"]) {
    const mine = rows.filter((r) => r.protocol === protocol);
    assert.equal(mine[0]?.result, `hello over ${protocol}`);
    assert.equal(mine[1]?.result, "(unset) → 1 → 2 → 3");
    // The error message crossed CORS: Grpc-Message (gRPC-web) or the Connect JSON body.
    assert.match(
      mine[2]?.result ?? "",
      /^refused: Unauthenticated \(missing credentials: .*Bearer/,
    );
  }
  // The writes reached the remote plugin's store.
  const host = new URL(allowed.origin).host;
  assert.equal(await storedValue(`${host}/connect/greeting`), "hello over connect");
  assert.equal(await storedValue(`${host}/grpc-web/counter`), "3");
});

test("a page on an origin the plugin does not allow sees CORS failures, and none of its calls run", async () => {
  const consoleErrors: string[] = [];
  const { page, rows } = await runPage(refused.origin, consoleErrors);
  await page.screenshot({ path: screenshotPath("browser-refused.png"), fullPage: true });
  await page.close();

  assert.equal(rows.length, 6);
  for (const row of rows) {
    assert.equal(row.state, "failed", JSON.stringify(row));
    assert.match(row.result, /Failed to fetch/, JSON.stringify(row));
  }
  assert.ok(
    consoleErrors.some((e) => e.includes("blocked by CORS policy")),
    `Chromium reports the CORS refusal: ${consoleErrors.join("\n")}`,
  );
  const host = new URL(refused.origin).host;
  assert.equal(await storedValue(`${host}/connect/greeting`), undefined);
  assert.equal(await storedValue(`${host}/grpc-web/greeting`), undefined);
  // The plugin's operator learns which origin was refused.
  assert.match(
    plugin.stderr(),
    new RegExp(`origin not allowed by CORS.*"origin":"${refused.origin}"`),
  );
});

test("Chromium's unary gRPC-web and Connect calls take the plugin's lean path over HTTP/1.1, behind CORS", async () => {
  // A network-mode server (cleartext: HTTP/1.1 and HTTP/2 on one port)
  // with CORS as serve() puts it in front, in this process so that the
  // handler can tell which path ran it.
  const seen: HandlerSeen = { lean: 0, reference: 0, aborted: [] };
  const adapter = createNodeAdapter({ routes: commandRoutes(seen, 4096) });
  const versions: string[] = [];
  const cors = new CorsPolicy({ allowedOrigins: [allowed.origin] });
  const guarded = CorsPolicy.wrap(cors, adapter);
  const server = await PluginHttpServer.listen(
    (req, res) => {
      versions.push(req.httpVersion);
      guarded(req, res);
    },
    { network: "tcp", host: "127.0.0.1", port: 0 },
    { acceptHttp1: true, streams: CorsPolicy.wrapStreams(adapter.claimStream) },
  );
  const page = await browser.newPage();
  try {
    const bound = server.bound;
    assert.equal(bound.network, "tcp");
    await page.goto(`${allowed.origin}/`);
    const url = `http://127.0.0.1:${bound.port}/bench.v1.BenchService/Echo`;
    const call = (headers: Record<string, string>, body: Uint8Array) =>
      page.evaluate(
        async ({ url, headers, body }) => {
          const res = await fetch(url, {
            method: "POST",
            headers,
            body: new Uint8Array(body),
          });
          const bytes = new Uint8Array(await res.arrayBuffer());
          return {
            status: res.status,
            body: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
          };
        },
        { url, headers, body: Array.from(body) },
      );
    const web = await call(
      { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      envelope(message("ok")),
    );
    assert.equal(web.status, 200);
    assert.deepEqual(grpcWebTrailerOf(web.body), { "grpc-status": "0", "x-trailer": "t" });
    const connect = await call(
      { "content-type": "application/proto", "connect-protocol-version": "1" },
      message("ok"),
    );
    assert.equal(connect.status, 200);
    assert.deepEqual(
      [seen.lean, seen.reference],
      [2, 0],
      "both calls ran on the lean path, none on connect-es'",
    );
    // The calls and their CORS preflights, all over HTTP/1.1 (Chromium speaks HTTP/2 only over TLS).
    assert.ok(versions.length >= 2 && versions.every((v) => v === "1.1"), versions.join());
  } finally {
    await page.close();
    await server.close();
  }
});
