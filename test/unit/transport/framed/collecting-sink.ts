import { Duplex } from "node:stream";

/**
 * A fake socket for a FrameWriter: keeps every buffer it is handed, in
 * order, after completing its write (as a callback tunnel's stream hands
 * its chunks on after their callbacks), so that a buffer overwritten after
 * its write would show.
 */
export function collectingSink(): { socket: Duplex; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      cb();
    },
    writev(chunks, cb) {
      for (const c of chunks) writes.push(c.chunk as Buffer);
      cb();
    },
  });
  return { socket, writes };
}
