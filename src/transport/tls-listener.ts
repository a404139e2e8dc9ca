import * as tls from "node:tls";
import { pemCertificates } from "./pem-certificates.js";
import { endFailedHandshake, peerOf } from "./listen.js";
import { serverTlsDefaults } from "./tls-defaults.js";

/**
 * A plugin-side TLS server's credentials and who may connect. Client
 * certificates are checked one of two ways, never both:
 *
 * - `clientCert` (AutoMTLS): the host's own certificate, PEM. Only a client
 *   presenting exactly this certificate is served (pinned by its DER bytes);
 *   a bundle pins each certificate in it (go-plugin trusts every one).
 * - `clientCa` (mutual TLS with a CA, network mode): a client must present a
 *   certificate this CA signed, verified by TLS as usual.
 *
 * Neither: any client is served (server-authenticated TLS only).
 */
export interface TlsListenerOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly clientCert?: string | Buffer;
  readonly clientCa?: string | Buffer;
  /** Protocols offered by ALPN, preferred first. Default: none (no ALPN). */
  readonly ALPNProtocols?: readonly string[];
  /** How long a client may take to finish its handshake (node's default allows 120 s). */
  readonly handshakeTimeoutMs: number;
  /** Told why a connection was refused after its handshake (a certificate other than the pinned one), for a log line. */
  readonly onRefused?: (reason: string) => void;
}

/**
 * The one place a plugin-side TLS server is made (the framed listener, and
 * network mode's port for framed, HTTP/2 and HTTP/1.1): `serve` is given
 * each connection once its handshake is done and its client accepted.
 *
 * Why pin instead of verifying against the host's certificate as a CA:
 * whenever a server context is given `ca`, node 20 first builds its whole
 * root certificate store (about 140 certificates, plus NODE_EXTRA_CA_CERTS)
 * and copies it for that context, and a context given no `ca` at all loads
 * the same store: about 20-50 ms of CPU, a third of a launched plugin's cold
 * start (docs/local-transports.md, "session 21"). With `ca: []` no store is
 * built; the client's certificate is still requested, TLS still makes the
 * client prove it holds the certificate's key (a right certificate with a
 * wrong key fails the handshake), and the certificate is compared with the
 * pinned one before the connection is handed on, so no request byte from
 * another client is ever parsed (what it sends is discarded, cutOff).
 * Verifying against the host's certificate as the only CA accepted the
 * same certificate and, since go-plugin's AutoMTLS certificates are CAs,
 * any certificate the host's key signed: the pin refuses those.
 *
 * Trade-off: a client with no certificate or another one now completes the
 * handshake and is then cut off (the connection is closed, close_notify
 * and no alert, where it got an alert in the handshake before; within
 * REFUSED_LINGER_MS), with the reason told to `onRefused`. With `clientCa`
 * the handshake refuses it, as before.
 */
export function createTlsListener(
  options: TlsListenerOptions,
  serve: (socket: tls.TLSSocket) => void,
): tls.Server {
  const { clientCert, clientCa } = options;
  if (clientCert !== undefined && clientCa !== undefined) {
    throw new Error(
      "TLS server: give clientCert (the one certificate accepted) or clientCa (the CA that signs accepted certificates), not both",
    );
  }
  const pinned =
    clientCert === undefined ? undefined : pemCertificates(clientCert).map((c) => c.raw);
  const listener = tls.createServer({
    cert: options.cert,
    key: options.key,
    ...serverTlsDefaults(),
    handshakeTimeout: options.handshakeTimeoutMs,
    ...(options.ALPNProtocols !== undefined && { ALPNProtocols: [...options.ALPNProtocols] }),
    ...(clientCa !== undefined
      ? { ca: clientCa, requestCert: true, rejectUnauthorized: true }
      : // No `ca`: no root store (see above); the pin is checked below.
        { ca: [], requestCert: pinned !== undefined, rejectUnauthorized: false }),
  });
  listener.on("secureConnection", (socket: tls.TLSSocket) => {
    if (pinned !== undefined) {
      const refused = refusal(socket, pinned);
      if (refused !== undefined) {
        options.onRefused?.(`TLS connection from ${peerOf(socket)} refused: ${refused}`);
        cutOff(socket);
        return;
      }
    }
    serve(socket);
  });
  listener.on("tlsClientError", endFailedHandshake);
  return listener;
}

/** How long a refused connection may take to close before it is destroyed. */
const REFUSED_LINGER_MS = 1_000;

/**
 * Closes a refused connection without serving it. end(), not destroy():
 * in TLS 1.2 the server's Finished is still queued when "secureConnection"
 * fires, and destroy() discarded it, so the client failed its handshake
 * ("Client network socket disconnected before secure TLS connection was
 * established") instead of seeing the connection closed. What the client
 * sends meanwhile is discarded (resume() with no "data" listener), so that
 * its end closes the socket at once; REFUSED_LINGER_MS bounds the rest (a
 * client that never closes holds the listener's close() no longer).
 */
function cutOff(socket: tls.TLSSocket): void {
  // A reset while closing must not become an uncaught "error".
  socket.on("error", () => {});
  const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  socket.once("close", () => clearTimeout(timer));
  socket.end();
  socket.resume();
}

/** Why `socket`'s client certificate is none of the pinned ones, or undefined if it is one. */
function refusal(socket: tls.TLSSocket, pinned: readonly Buffer[]): string | undefined {
  const presented = socket.getPeerX509Certificate();
  if (presented === undefined) return "the client presented no certificate";
  const raw = presented.raw;
  if (!pinned.some((p) => raw.equals(p))) {
    return `the client's certificate (${presented.subject.replace(/\n/g, ", ") || "no subject"}) is not the host's`;
  }
  return undefined;
}
