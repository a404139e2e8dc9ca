/**
 * Pipelined HTTP/1.1 requests on a connection that drops: node:http
 * runs every pipelined request as it arrives, but gives a response
 * its socket only when the one before it ends, so a queued response never
 * sees the connection's "close". Every handler still in flight must see its
 * signal abort (as an HTTP/2 stream reset does), on the lean path and on
 * connect-es' handlers alike.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { createNodeAdapter } from "../../../src/transport/node-adapter.js";
import * as routes from "./command-routes.js";

const ECHO = "/bench.v1.BenchService/Echo";

/** One HTTP/1.1 Connect request to Echo, as raw bytes. */
function rawRequest(command: string): Buffer {
  const [headers, body] = routes.request("connect", command);
  const head =
    `POST ${ECHO} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    `content-type: ${String(headers["content-type"])}\r\nconnect-protocol-version: 1\r\n` +
    `content-length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), body]);
}

/** Waits until `done()`, failing after `ms` instead of hanging. */
async function until(done: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(what());
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const lean of [true, false]) {
  const path = lean ? "the lean path" : "connect-es' handler";
  test(`pipelined HTTP/1.1 requests, connection dropped: every handler in flight is aborted (${path})`, async () => {
    const seen: routes.HandlerSeen = { lean: 0, reference: 0, aborted: [] };
    let started = 0;
    seen.started = () => started++;
    const server = http.createServer(
      createNodeAdapter({ routes: routes.commandRoutes(seen, 4096), lean }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const socket = net.connect((server.address() as AddressInfo).port, "127.0.0.1");
      socket.on("error", () => {});
      // Three in one write: node:http runs all three, the 2nd and 3rd responses queued; a
      // 4th whose body is cut short by the drop must never run.
      const cut = rawRequest("hang");
      socket.write(
        Buffer.concat([
          rawRequest("hang"),
          rawRequest("hang"),
          rawRequest("hang"),
          cut.subarray(0, cut.length - 2),
        ]),
      );
      await until(
        () => started === 3,
        5000,
        () => `${started} of 3 handlers started`,
      );
      socket.destroy();
      await until(
        () => seen.aborted.length === 3,
        3000,
        () => `${seen.aborted.length} of 3 handlers saw their signal abort after the drop`,
      );
      assert.deepEqual(
        seen.aborted.map((a) => a.code),
        [Code.Canceled, Code.Canceled, Code.Canceled],
      );
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(started, 3, "the cut request did not run");
      assert.equal(lean ? seen.lean : seen.reference, 3, "which path ran them");
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
}
