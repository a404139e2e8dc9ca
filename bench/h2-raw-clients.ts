/**
 * The HTTP/2 floor's client, bare node:http2 with no Connect and no
 * protobuf, calling the bench plugin's Echo with a 16-byte BytesValue:
 * `rawClient` speaks gRPC (bench/contenders.ts rawHttp2's framing,
 * grpc-status from the trailers), `rawConnectClient` the Connect protocol
 * (no trailers frame). Shared by bench/h2-client-cpu.ts and
 * bench/h2-client-heap.ts.
 */
import * as http2 from "node:http2";
import type * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";

/** One echo call with this value. */
export type Echo = (value: Uint8Array) => Promise<unknown>;

/** A floor client: its echo calls, and close(). */
export interface RawClient {
  readonly echo: Echo;
  readonly close: () => void;
}

/** A session over `connect`, the 16-byte BytesValue serialized once, and the protocol's echo over them. */
function rawOver(
  connect: () => net.Socket,
  echoOn: (session: http2.ClientHttp2Session, message: Uint8Array) => Echo,
): RawClient {
  const session = http2.connect("http://localhost", { createConnection: connect });
  session.on("error", () => {});
  const message = toBinary(
    BytesValueSchema,
    create(BytesValueSchema, { value: new Uint8Array(16) }),
  );
  return { echo: echoOn(session, message), close: () => session.destroy() };
}

/** The floor's client (bench/contenders.ts rawHttp2), sending a real BytesValue. */
export function rawClient(connect: () => net.Socket): RawClient {
  return rawOver(connect, (session, message) => (value) => {
    const encoded = Buffer.from(message);
    encoded.set(value, encoded.length - value.length);
    const body = Buffer.allocUnsafe(5 + encoded.length);
    body[0] = 0;
    body.writeUInt32BE(encoded.length, 1);
    body.set(encoded, 5);
    return new Promise<void>((resolveCall, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/bench.v1.BenchService/Echo",
        "content-type": "application/grpc",
        te: "trailers",
      });
      let status: string | undefined;
      let got = 0;
      stream.on("data", (c: Buffer) => (got += c.length));
      stream.once(
        "trailers",
        (t: http2.IncomingHttpHeaders) => (status = String(t["grpc-status"])),
      );
      stream.once("error", reject);
      stream.once("close", () =>
        status === "0" && got === body.length
          ? resolveCall()
          : reject(new Error(`grpc-status ${status}, ${got} bytes`)),
      );
      stream.end(body);
    });
  });
}

/**
 * The floor's client speaking the Connect protocol: the BytesValue as the
 * body (no envelope), the call's success read from the response's
 * `:status` (a Connect unary answer has no trailers frame). Nothing is
 * decoded, as for rawClient.
 */
export function rawConnectClient(connect: () => net.Socket): RawClient {
  return rawOver(connect, (session, message) => (value) => {
    const body = Buffer.from(message);
    body.set(value, body.length - value.length);
    return new Promise<void>((resolveCall, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/bench.v1.BenchService/Echo",
        "content-type": "application/proto",
        "connect-protocol-version": "1",
      });
      let status: number | undefined;
      let got = 0;
      stream.once("response", (h: http2.IncomingHttpStatusHeader) => (status = h[":status"]));
      stream.on("data", (c: Buffer) => (got += c.length));
      stream.once("error", reject);
      stream.once("close", () =>
        status === 200 && got === body.length
          ? resolveCall()
          : reject(new Error(`status ${status}, ${got} bytes`)),
      );
      stream.end(body);
    });
  });
}
