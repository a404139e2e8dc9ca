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
