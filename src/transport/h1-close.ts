import type * as http from "node:http";
import type { Socket } from "node:net";

/**
 * The close of an HTTP/1.1 response, or of its connection first. node:http
 * runs pipelined requests as they arrive but gives a response its socket
 * only when the one before it ends: a queued response never emits "close"
 * when the connection goes, so its handler would never be aborted. Here
 * the request's socket (the connection) is watched as well, through one
 * "close" listener per connection (however many requests are pipelined on
 * it), which a response leaves when it closes.
 */

/** The listeners of each connection's responses still open. */
const open = new WeakMap<Socket, Set<() => void>>();

/**
 * Calls `listener` once, when `res` closes (it ended, or its connection
 * went while it had the socket) or its connection closes first (it was
 * queued). Calls it at once if the connection has closed already.
 */
export function onResponseClose(res: http.ServerResponse, listener: () => void): void {
  const socket = res.req.socket as Socket | null;
  let fired = false;
  const fire = (): void => {
    if (fired) return;
    fired = true;
    if (socket !== null) open.get(socket)?.delete(fire);
    listener();
  };
  res.once("close", fire);
  if (socket === null) return;
  if (socket.closed) {
    fire();
    return;
  }
  let listeners = open.get(socket);
  if (listeners === undefined) {
    const set = new Set<() => void>();
    listeners = set;
    open.set(socket, set);
    socket.once("close", () => {
      for (const f of set) f();
    });
  }
  listeners.add(fire);
}
