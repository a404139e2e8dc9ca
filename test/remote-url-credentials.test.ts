/**
 * A remote plugin URL with user info (`http://user:password@host/`): the
 * host sends it as Basic auth on every call when the call has no
 * authorization header of its own (what node:http does for such a URL),
 * over HTTP/1.1, HTTP/2 and the framed protocol alike (that the password
 * is in no error message: h1-target.test.ts, both HTTP versions), and
 * status() shows it as `***` while the calls still send it. A real
 * network-mode KV plugin on loopback records the header in a user
 * interceptor.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { Interceptor } from "@connectrpc/connect";
import { bearerAuth, cluster, remote, serve, type ServeHandle } from "../src/index.js";
import { kvPlugin } from "../examples/kv/definition.js";
import { kvClient } from "./helpers.js";

/** User and password with characters a URL escapes (a space, a colon). */
const USER = "us er";
const PASSWORD = "p:w s3cret";
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;

/** The authorization header of each call the plugin saw (but its health checks). */
const seen: Array<string | null> = [];
const recordAuth: Interceptor = (next) => (req) => {
  seen.push(req.header.get("authorization"));
  return next(req);
};

let server: ServeHandle;
const servers: ServeHandle[] = [];
after(async () => {
  for (const s of servers) await s.shutdown("test done");
});

/** The plugin's URL with the user info in it. */
async function urlWithUser(): Promise<URL> {
  if (server === undefined) {
    server = await serve(kvPlugin(), {
      listen: "127.0.0.1:0",
      exitProcess: false,
      interceptors: [recordAuth],
    });
    servers.push(server);
  }
  const url = new URL(server.url);
  url.username = USER;
  url.password = PASSWORD;
  return url;
}

const PATHS = {
  "HTTP/1.1": { transport: "http", httpVersion: "1.1" },
  "HTTP/2": { transport: "http", httpVersion: "2" },
  framed: { transport: "framed" },
} as const;

for (const [name, options] of Object.entries(PATHS)) {
  test(`a URL's user info goes as Basic auth over ${name}, on every call`, async () => {
    const client = kvClient(remote(await urlWithUser(), options), { startTimeoutMs: 5_000 });
    try {
      const count = seen.length;
      await client.start();
      const kv = client.dispense("kv");
      await kv.put({ key: "a", value: new Uint8Array([1]) });
      await kv.get({ key: "a" });
      const calls = seen.slice(count);
      assert.ok(calls.length >= 3, `${calls.length} calls seen`);
      assert.deepEqual(new Set(calls), new Set([BASIC]));
    } finally {
      await client.close();
    }
  });

  test(`over ${name}, an authorization header of the caller's own is sent instead of the URL's`, async () => {
    const client = kvClient(remote(await urlWithUser(), options), {
      startTimeoutMs: 5_000,
      interceptors: [bearerAuth("t0ken")],
    });
    try {
      const count = seen.length;
      await client.start();
      await client.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
      assert.deepEqual(new Set(seen.slice(count)), new Set(["Bearer t0ken"]));
    } finally {
      await client.close();
    }
  });
}

for (const [what, user, password, secret] of [
  ["a URL's password", USER, PASSWORD, /s3cret/],
  ["a user name with no password (a token)", "T0KEN", "", /T0KEN/],
] as const) {
  test(`status() shows ${what} as ***, in a remote plugin's \`where\` and in a cluster's endpoints, and the calls still send it`, async () => {
    const url = await urlWithUser();
    url.username = user;
    url.password = password;
    // With a password the user name stays; without one the user name is the secret.
    const masked = new URL(url);
    if (password === "") masked.username = "***";
    else masked.password = "***";
    const clients = [kvClient(remote(url)), kvClient(cluster([url.href]))];
    try {
      const count = seen.length;
      for (const client of clients) {
        await client.start();
        await client.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
      }
      const basic = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
      assert.deepEqual(new Set(seen.slice(count)), new Set([basic]));
      const [single, pooled] = clients.map((c) => c.status());
      assert.equal(single?.where, masked.href);
      assert.deepEqual(
        pooled?.endpoints.map((e) => e.url),
        [masked.href.replace(/\/$/, "")],
      );
      assert.doesNotMatch(JSON.stringify([single, pooled]), secret);
    } finally {
      for (const client of clients) await client.close();
    }
  });
}

test("status() masks the password of an endpoint spelled otherwise than node prints it (a leading space, no //, a \\ for /), which node's URL parser reads and the calls send", async () => {
  const url = await urlWithUser();
  const rest = url.href.slice("http://".length);
  const masked = new URL(url);
  masked.password = "***";
  for (const spelled of [` ${url.href}`, `http:${rest}`, `http:\\\\${rest}`]) {
    // An endpoint is used as given, as etcd's registrations give it (a string is printed node's way).
    const client = kvClient(cluster([{ id: "a", url: spelled }]));
    try {
      const count = seen.length;
      await client.start();
      await client.dispense("kv").put({ key: "a", value: new Uint8Array([1]) });
      assert.deepEqual(new Set(seen.slice(count)), new Set([BASIC]), spelled);
      assert.deepEqual(
        client.status()?.endpoints.map((e) => e.url),
        [masked.href],
        spelled,
      );
      assert.doesNotMatch(JSON.stringify(client.status()), /s3cret/, spelled);
    } finally {
      await client.close();
    }
  }
});

test("a token as the URL's user name is in no message: a failed start names the plugin as http://***@…", async () => {
  // Nothing listens on port 1: the start fails with a message that names the plugin.
  const client = kvClient(remote("http://T0KEN@127.0.0.1:1/"), { startTimeoutMs: 5_000 });
  try {
    await assert.rejects(client.start(), (e: Error) => {
      assert.match(e.message, /http:\/\/\*\*\*@127\.0\.0\.1:1\//);
      assert.doesNotMatch(e.message, /T0KEN/);
      return true;
    });
  } finally {
    await client.close();
  }
});
