import { once } from "node:events";
import * as net from "node:net";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import { createFramedTransport } from "../src/transport/framed/client.js";
import { serveFramedStream, type FramedServerOptions } from "../src/transport/framed/server.js";
import { tempDir } from "./helpers.js";

/**
 * A framed server for `routes` (with `options`, default none) on a unix
 * socket in a temporary directory, and a framed transport to it; both
 * closed when test `t` ends.
 */
export async function framedUnixTransport(
  t: TestContext,
  routes: (router: ConnectRouter) => void,
  options: FramedServerOptions = {},
): Promise<Transport> {
  const server = net.createServer((socket) => serveFramedStream(routes, socket, options));
  const path = join(tempDir("framed-"), "s.sock");
  server.listen(path);
  await once(server, "listening");
  t.after(() => server.close());
  const transport = createFramedTransport({ network: "unix", address: path });
  t.after(() => transport.close());
  return transport.transport;
}
