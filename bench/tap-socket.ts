import type * as net from "node:net";
import { Duplex } from "node:stream";

/**
 * A duplex over `socket` that hands every incoming chunk to `onBytes`
 * before passing it on: what an HTTP/2 client connection (its
 * `createConnection`) reads, seen byte for byte, for counting or recording
 * the server's frames. Backpressure and errors pass through.
 */
export function tapSocket(socket: net.Socket, onBytes: (chunk: Buffer) => void): Duplex {
  const duplex = new Duplex({
    read: () => socket.resume(),
    write: (chunk: Buffer, _encoding, callback) => socket.write(chunk, callback),
    final: (callback) => socket.end(callback),
    destroy: (error, callback) => {
      socket.destroy();
      callback(error);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    onBytes(chunk);
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.once("end", () => duplex.push(null));
  socket.on("error", (error) => duplex.destroy(error));
  return duplex;
}
