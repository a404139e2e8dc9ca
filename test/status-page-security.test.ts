/**
 * The status page is safe to open: secrets in command lines and URLs are
 * masked, a token can be required, every answer carries nosniff and the page
 * a CSP, and the CLI refuses to serve it beyond loopback without an explicit
 * flag and a token. (status-page.test.ts shows the page still works in
 * Chromium under its CSP.)
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { PluginClient, remote, statusPage, subprocess } from "../src/index.js";
import { redact } from "../src/status/page-security.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { silentLogger } from "../src/index.js";
import { cli } from "./oci-helpers.js";
import { tempDir } from "./helpers.js";

async function withPage(
  token: string | undefined,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const clients = [
    remote("http://admin:hunter2@127.0.0.1:1/"),
    subprocess("/opt/plugin", ["--token", "s3cret", "--api-key=k3y", "--verbose"]),
  ].map((source, i) => ({
    name: `p${i}`,
    client: new PluginClient({ handshake, plugins: { kv: KV }, source, logger: silentLogger }),
  }));
  const server: Server = createServer(statusPage(clients, token === undefined ? {} : { token }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

test("status: secrets in URLs and arguments are masked", async () => {
  await withPage(undefined, async (url) => {
    const text = await (await fetch(`${url}status.json`)).text();
    assert.doesNotMatch(text, /hunter2|s3cret|k3y/);
    const where = (JSON.parse(text) as { plugins: { where: string }[] }).plugins.map(
      (p) => p.where,
    );
    assert.deepEqual(where, [
      "http://***@127.0.0.1:1/",
      "/opt/plugin --token *** --api-key=*** --verbose",
    ]);
  });
  assert.equal(redact("TOKEN=abc node p.js --password=x"), "TOKEN=*** node p.js --password=***");
  // A password with an unencoded "@": the URL's user info ends at the last one.
  assert.equal(redact("http://ada:se@cret@host:1/x"), "http://***@host:1/x");
  assert.equal(new URL("http://ada:se@cret@host:1/x").host, "host:1");
  // An "@" after the authority is not user info.
  assert.equal(redact("http://host:1/a@b?c=d@e"), "http://host:1/a@b?c=d@e");
  assert.equal(redact("http://host:1?c=d@e#f@g"), "http://host:1?c=d@e#f@g");
});

test("status: nosniff everywhere, and a CSP that allows only the page's own script and style", async () => {
  await withPage(undefined, async (url) => {
    const page = await fetch(url);
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    assert.match(
      page.headers.get("content-security-policy") ?? "",
      /^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'; /,
    );
    for (const path of ["status.json", "nothing"]) {
      assert.equal((await fetch(url + path)).headers.get("x-content-type-options"), "nosniff");
    }
  });
});

test("status: with a token, nothing is served without it; ?token= sets a cookie the page's stream uses", async () => {
  await withPage("t0ken", async (url) => {
    for (const path of ["", "status.json", "events"]) {
      const res = await fetch(url + path);
      assert.equal(res.status, 401, path);
      assert.equal(
        await res.text(),
        "this status page needs its token: open it at ?token=<token>\n",
      );
    }
    assert.equal((await fetch(`${url}?token=wrong`)).status, 401);
    const page = await fetch(`${url}?token=t0ken`);
    assert.equal(page.status, 200);
    const cookie = page.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^connect_plugin_status=t0ken; HttpOnly; SameSite=Strict; Path=\/$/);
    const json = await fetch(`${url}status.json`, {
      headers: { cookie: cookie.split(";")[0] ?? "" },
    });
    assert.equal(json.status, 200);
    const bearer = await fetch(`${url}status.json`, { headers: { authorization: "Bearer t0ken" } });
    assert.equal(bearer.status, 200);
  });
});

test("status --web refuses a non-loopback --host without --allow-remote and a token", async () => {
  const flags = ["--dir", tempDir("cp-status-sec-")];
  for (const extra of [[], ["--allow-remote"], ["--token", "x"]]) {
    const res = await cli([...flags, "status", "--web", "--host", "0.0.0.0", ...extra], {
      CONNECT_PLUGIN_STATUS_TOKEN: "",
    });
    assert.equal(res.code, 7, res.stderr);
    assert.match(
      res.stderr,
      /--host 0\.0\.0\.0 is not a loopback address: the status page shows every plugin's command line and endpoints, so it serves other machines only with --allow-remote and a token \(--token or CONNECT_PLUGIN_STATUS_TOKEN\)/,
    );
  }
});

test("status: a malformed token cookie is refused with 401 and the server stays up", async () => {
  await withPage("t0k3n", async (url) => {
    for (const cookie of ["connect_plugin_status=%E0%A4%A", "connect_plugin_status=%"]) {
      const refused = await fetch(`${url}status.json`, { headers: { cookie } });
      assert.equal(refused.status, 401, cookie);
      assert.match(await refused.text(), /needs its token/);
    }
    const ok = await fetch(`${url}status.json`, {
      headers: { cookie: "connect_plugin_status=%; connect_plugin_status=t0k3n" },
    });
    assert.equal(ok.status, 200, "the good cookie beside a malformed one still opens the page");
    await ok.text();
  });
});
