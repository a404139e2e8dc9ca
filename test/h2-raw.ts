/**
 * Raw HTTP/2 bytes for tests that play a hostile or broken peer, which no
 * HTTP/2 client library will do: the client preface, frames, and HPACK
 * request headers written as plain literals.
 */
import * as net from "node:net";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export function h2Frame(
  type: number,
  flags: number,
  stream: number,
  payload: Uint8Array = Buffer.alloc(0),
): Buffer {
  const b = Buffer.alloc(9);
  b.writeUIntBE(payload.length, 0, 3);
  b.writeUInt8(type, 3);
  b.writeUInt8(flags, 4);
  b.writeUInt32BE(stream, 5);
  return Buffer.concat([b, payload]);
}

/** HPACK literals without Huffman coding (RFC 7541 6.2.2); values under 127 bytes. */
export function requestHeaders(path: string, contentType = "application/connect+proto"): Buffer {
  const literal = (index: number, value: string): Buffer =>
    Buffer.concat([
      index < 15 ? Buffer.from([index]) : Buffer.from([0x0f, index - 15]),
      Buffer.from([value.length]),
      Buffer.from(value),
    ]);
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http
    literal(4, path),
    literal(1, "127.0.0.1"),
    literal(31, contentType),
  ]);
}

/** A connection that has sent the preface and an empty SETTINGS frame, and ignores what it is told. */
export async function h2Raw(address: number | net.NetConnectOpts): Promise<net.Socket> {
  const socket = net.connect(
    typeof address === "number" ? { port: address, host: "127.0.0.1" } : address,
  );
  socket.on("error", () => {});
  socket.on("data", () => {}); // read and ignore what the server says
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.write(Buffer.concat([PREFACE, h2Frame(4, 0, 0)]));
  return socket;
}
