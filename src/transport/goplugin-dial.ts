import * as net from "node:net";
import * as tls from "node:tls";
import type { Interceptor } from "@connectrpc/connect";
import { createH2Transport, splitHostPort, type ClientTransport } from "./client-transport.js";
import { clientTlsDefaults } from "./tls-defaults.js";

/**
 * TLS between go-plugin peers (AutoMTLS): our certificate and key, and the
 * one certificate we trust, the peer's. Each side presents its own
 * certificate and accepts only the other's.
 */
export interface PeerTls {
  readonly certPem: string;
  readonly keyPem: string;
  readonly peerCertPem: string;
}

/** go-plugin peers name each other "localhost" in their certificates. */
const SERVER_NAME = "localhost";

/**
 * A gRPC transport to a go-plugin peer: a plugin's announced socket, or a
 * service reached through the GRPCBroker (or, with `protocol: "connect"`, a
 * connect-plugin subprocess over AutoMTLS). HTTP/2 with prior knowledge in
 * plaintext, or HTTP/2 over TLS with ALPN "h2" (which grpc-go requires) and
 * our client certificate when `peerTls` is given. Messages up to 2 GiB, like
 * go-plugin's dialer.
 */
export function createGoPluginTransport(
  target: { network: "unix" | "tcp"; address: string },
  options: {
    tls?: PeerTls;
    interceptors?: Interceptor[];
    protocol?: "grpc" | "connect";
    callHeaders?: readonly (readonly [string, string])[];
  } = {},
): ClientTransport {
  const dial = (): net.Socket => {
    if (target.network === "unix") return net.connect(target.address);
    const { host, port } = splitHostPort(target.address);
    return net.connect({ host, port, noDelay: true });
  };
  const peer = options.tls;
  const createConnection =
    peer === undefined
      ? dial
      : () =>
          tls.connect({
            socket: dial(),
            servername: SERVER_NAME,
            ca: peer.peerCertPem,
            cert: peer.certPem,
            key: peer.keyPem,
            ALPNProtocols: ["h2"],
            ...clientTlsDefaults(),
          });
  const baseUrl = peer === undefined ? "http://localhost" : "https://localhost";
  const interceptors = options.interceptors ?? [];
  const callHeaders = options.callHeaders ?? [];
  return options.protocol === "connect"
    ? createH2Transport(baseUrl, { createConnection }, { interceptors, callHeaders })
    : createH2Transport(
        baseUrl,
        { createConnection },
        {
          protocol: "grpc",
          interceptors,
          callHeaders,
          readMaxBytes: 0x7fffffff,
          writeMaxBytes: 0x7fffffff,
        },
      );
}
