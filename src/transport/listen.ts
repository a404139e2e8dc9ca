import type * as net from "node:net";

/** Where a server listens. */
export type ListenTarget =
  | { readonly network: "unix"; readonly path: string }
  | { readonly network: "tcp"; readonly host: string; readonly port: number };

/** Where a server ended up listening, with the port resolved. */
export type BoundAddress =
  | { readonly network: "unix"; readonly address: string }
  | {
      readonly network: "tcp";
      readonly address: string;
      readonly host: string;
      readonly port: number;
    };

/**
 * Starts `listener` on `target` and resolves to where it is bound (port 0
 * resolved, IPv6 hosts in brackets); rejects on a listen error (address in
 * use, no such directory). The HTTP and framed servers both listen this way.
 */
export async function listenOn(listener: net.Server, target: ListenTarget): Promise<BoundAddress> {
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    const done = (): void => {
      listener.off("error", reject);
      resolve();
    };
    if (target.network === "unix") listener.listen(target.path, done);
    else listener.listen(target.port, target.host, done);
  });
  const addr = listener.address();
  if (addr !== null && typeof addr === "object") {
    const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    return { network: "tcp", address: `${host}:${addr.port}`, host, port: addr.port };
  }
  return { network: "unix", address: String(addr) };
}

/**
 * A failed TLS handshake only concerns that one connection, which it ends:
 * node reports a handshake that timed out (handshakeTimeout) but leaves its
 * socket open, so a peer that stalls its ClientHello was held for ever.
 */
export function endFailedHandshake(_error: Error, socket: { destroy(): void }): void {
  socket.destroy();
}

/** "address:port" of a connection's peer, for log lines (read while it is open). */
export function peerOf(socket: { remoteAddress?: string; remotePort?: number }): string {
  const address = socket.remoteAddress;
  return address === undefined ? "a local peer" : `${address}:${socket.remotePort}`;
}
