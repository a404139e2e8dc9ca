/**
 * IncomingHeaders (src/transport/incoming-headers.ts), the lean HTTP/2
 * path's request headers, against the eager copy connect-es' path makes
 * (nodeHeadersToWeb): every read gives the same answer, before and after
 * the copy, and the same errors with the same messages.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type * as http2 from "node:http2";
import { test } from "node:test";
import { IncomingHeaders } from "../../../src/transport/incoming-headers.js";
import { nodeHeadersToWeb } from "../../../src/transport/node-headers.js";
import { peeks } from "../../../src/transport/peek-headers.js";

const NODE: http2.IncomingHttpHeaders = {
  ":method": "POST",
  ":path": "/bench.v1.BenchService/Echo",
  "content-type": "application/proto",
  "connect-protocol-version": "1",
  "set-cookie": ["a=1", "b=2"],
  cookie: "c=3; d=4",
  "x-empty": "",
};

const NAMES = [
  "content-type",
  "Content-Type",
  "CONNECT-PROTOCOL-VERSION",
  "set-cookie",
  "cookie",
  "x-empty",
  "x-missing",
];

function errorOf(f: () => unknown): string {
  try {
    f();
    return "no error";
  } catch (e) {
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
}

test("get() and has() answer as the copy would, without copying", () => {
  const lazy = new IncomingHeaders(NODE);
  const eager = nodeHeadersToWeb(NODE);
  for (const name of NAMES) {
    assert.equal(lazy.get(name), eager.get(name), name);
    assert.equal(lazy.has(name), eager.has(name), name);
  }
  assert.equal(lazy.untouched, true, "get() and has() copied nothing");
  assert.ok(lazy instanceof Headers);
});

test("every other read copies first and gives the same", () => {
  const lazy = new IncomingHeaders(NODE);
  const eager = nodeHeadersToWeb(NODE);
  assert.deepEqual([...lazy], [...eager]);
  assert.equal(lazy.untouched, false);
  assert.deepEqual(lazy.getSetCookie(), eager.getSetCookie());
  for (const name of NAMES) assert.equal(lazy.get(name), eager.get(name), name);
  assert.deepEqual([...new Headers(new IncomingHeaders(NODE))], [...eager]);
  const seen: string[] = [];
  new IncomingHeaders(NODE).forEach((v, k) => seen.push(`${k}=${v}`));
  assert.deepEqual(
    seen,
    [...eager].map(([k, v]) => `${k}=${v}`),
  );
});

test("a change is seen by get() and has() afterwards", () => {
  const lazy = new IncomingHeaders(NODE);
  lazy.set("content-type", "application/json");
  lazy.delete("cookie");
  lazy.append("x-new", "n");
  assert.equal(lazy.get("content-type"), "application/json");
  assert.equal(lazy.has("cookie"), false);
  assert.equal(lazy.get("x-new"), "n");
});

test("an invalid name throws the TypeError Headers throws, with its message", () => {
  const lazy = new IncomingHeaders(NODE);
  const eager = nodeHeadersToWeb(NODE);
  for (const name of ["bad name", ":path", ""]) {
    const message = errorOf(() => eager.get(name));
    assert.match(message, /^TypeError: .*invalid header name/);
    assert.equal(
      errorOf(() => lazy.get(name)),
      message,
    );
    assert.equal(
      errorOf(() => lazy.has(name)),
      errorOf(() => eager.has(name)),
    );
  }
});

test("a value the copy would change is copied first: the same answer", () => {
  // nghttp2 lets none of these through; answered as a copy would, all the same.
  const node = { "x-padded": " v\t", "x-list": ["1", " 2"] };
  const lazy = new IncomingHeaders(node);
  assert.equal(lazy.get("x-padded"), "v");
  assert.equal(lazy.untouched, false);
  assert.equal(new IncomingHeaders(node).get("x-list"), nodeHeadersToWeb(node).get("x-list"));
});

test("a value undici refuses throws its TypeError when first read, with its message", () => {
  const node = { "x-bad": "a\nb" };
  const message = errorOf(() => nodeHeadersToWeb(node));
  assert.match(message, /^TypeError: .*invalid header value/s);
  const lazy = new IncomingHeaders(node);
  assert.equal(
    errorOf(() => lazy.get("x-bad")),
    message,
  );
});

test("get() and has() without a name throw the TypeError Headers throws, as the copy does", () => {
  // A header literally named "undefined" must not answer a call that names none.
  for (const node of [NODE, { ...NODE, undefined: "x" }]) {
    const eager = nodeHeadersToWeb(node);
    const lazy = new IncomingHeaders(node);
    const call = (h: Headers, method: "get" | "has") => () =>
      (h[method] as (...args: unknown[]) => unknown).call(h);
    for (const method of ["get", "has"] as const) {
      const message = errorOf(call(eager, method));
      assert.match(message, /^TypeError: .*1 argument required/);
      assert.equal(errorOf(call(lazy, method)), message, method);
    }
  }
});

test("importing connect-plugin/plugin (host-sessions.ts asks IncomingHeaders whether it peeks) does not load undici", () => {
  // A subclass of Headers loads undici when its module is imported; a framed plugin must not pay for it.
  const plugin = new URL("../../../src/plugin.js", import.meta.url).href;
  const loaded = execFileSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `await import(${JSON.stringify(plugin)}); process.stdout.write(String(process.moduleLoadList.some((m) => m.includes("undici"))));`,
    ],
    { encoding: "utf8" },
  );
  assert.equal(loaded, "false", "undici was loaded by importing connect-plugin/plugin");
});

test("the peek marker says what untouched says, and nothing for other headers", () => {
  const lazy = new IncomingHeaders(NODE);
  assert.equal(peeks(lazy), true);
  lazy.get("content-type");
  assert.equal(peeks(lazy), true, "get() copies nothing");
  assert.ok([...lazy].length > 0);
  assert.equal(peeks(lazy), false);
  assert.equal(peeks(nodeHeadersToWeb(NODE)), false);
});
