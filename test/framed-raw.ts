/**
 * A raw framed client for tests that must write frames a real client never
 * would (a call crossing the server's end, a message that does not parse):
 * it sends the preface, writes what it is told, and records every frame the
 * server sends. `allowHalfOpen` lets it write after the server has ended its
 * side, as a client does whose frames crossed the server's end on the wire.
 */
import * as net from "node:net";
import { FrameReader, FrameType } from "../src/transport/framed/frames.js";
import { FRAMED_PREFACE } from "../src/transport/framed/preface.js";

export interface RawFrame {
  readonly type: number;
  readonly id: number;
  readonly payload: Uint8Array;
}

export interface RawFramed {
  readonly socket: net.Socket;
  readonly frames: RawFrame[];
  readonly ended: () => boolean;
  readonly closed: () => boolean;
  /** Call `id`'s trailer, parsed (`e`: its error on the wire), once it came. */
  readonly trailer: (id: number) => { e?: { c: number; m: string } } | undefined;
}

/** Connects to a framed port on 127.0.0.1; `onSocket` gets the socket to destroy at cleanup. */
export function rawFramed(port: number, onSocket: (socket: net.Socket) => void): RawFramed {
  const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  onSocket(socket);
  const frames: RawFrame[] = [];
  const reader = new FrameReader((type, id, payload) => frames.push({ type, id, payload }));
  let preface = Buffer.alloc(0);
  let ended = false;
  let closed = false;
  socket.on("data", (chunk: Buffer) => {
    if (preface.length < FRAMED_PREFACE.length) {
      preface = Buffer.concat([preface, chunk]);
      if (preface.length > FRAMED_PREFACE.length)
        reader.push(preface.subarray(FRAMED_PREFACE.length));
      return;
    }
    reader.push(chunk);
  });
  socket.once("end", () => (ended = true));
  socket.once("close", () => (closed = true));
  socket.on("error", () => {});
  socket.write(FRAMED_PREFACE);
  return {
    socket,
    frames,
    ended: () => ended,
    closed: () => closed,
    trailer: (id) => {
      const t = frames.find((f) => f.type === FrameType.trailer && f.id === id);
      if (t === undefined) return undefined;
      return (t.payload.length === 0 ? {} : JSON.parse(Buffer.from(t.payload).toString())) as {
        e?: { c: number; m: string };
      };
    },
  };
}

/** A fake framed server on 127.0.0.1 (see its users for why each is a fake). */
export interface FakeFramedServer {
  readonly port: number;
  /** Every connection it accepted, in order. */
  readonly sockets: net.Socket[];
  /** Destroys its connections and stops listening. */
  readonly close: () => Promise<void>;
}

/**
 * Answers the preface and hands every frame a client sends to `onFrame`,
 * which writes whatever answer the test needs on `socket`.
 */
export async function fakeFramedServer(
  onFrame: (socket: net.Socket, type: number, id: number, payload: Uint8Array) => void,
): Promise<FakeFramedServer> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    let head = Buffer.alloc(0);
    const reader = new FrameReader((type, id, payload) => onFrame(socket, type, id, payload));
    socket.on("data", (chunk: Buffer) => {
      if (head.length < FRAMED_PREFACE.length) {
        head = Buffer.concat([head, chunk]);
        if (head.length < FRAMED_PREFACE.length) return;
        socket.write(FRAMED_PREFACE);
        if (head.length > FRAMED_PREFACE.length) reader.push(head.subarray(FRAMED_PREFACE.length));
        return;
      }
      reader.push(chunk);
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
