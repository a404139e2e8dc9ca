/**
 * The status page's handler against request targets that Node's HTTP parser
 * lets through but that are not URLs: one such request must not take down the
 * server the page is mounted on (found in review; `new URL("http://[")` throws).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { test } from "node:test";
import { statusPage } from "../src/index.js";

/** Sends one raw HTTP/1.1 request and returns the status line of the answer. */
async function rawStatusLine(port: number, target: string): Promise<string> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  socket.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  let answer = "";
  for await (const chunk of socket) answer += String(chunk);
  return answer.split("\r\n", 1)[0] ?? "";
}

test("targets that are not URLs get an answer, and the page keeps serving", async () => {
  const server = createServer(statusPage([]));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  try {
    for (const target of ["http://[", "http://%zz/", "//["]) {
      assert.match(await rawStatusLine(port, target), /^HTTP\/1\.1 [24]0[04] /, target);
    }
    assert.match(await rawStatusLine(port, "/"), /^HTTP\/1\.1 200 /);
    assert.match(await rawStatusLine(port, "/status.json?x=1"), /^HTTP\/1\.1 200 /);
  } finally {
    server.close();
  }
});
