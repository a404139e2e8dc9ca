/**
 * How a network-mode port tells the framed protocol from HTTP (docs/protocol.md,
 * section 8): the port keeps serving Connect, gRPC and gRPC-web to everyone,
 * and a connect-plugin host that asks gets the framed protocol on it.
 *
 * - **Cleartext**: the client's first bytes are {@link FRAMED_PREFACE}. Its
 *   first byte, 0x89, is not a letter, so it is neither an HTTP/1.1 method
 *   nor the HTTP/2 preface ("PRI ..."): one byte decides. The server answers
 *   with the same bytes before anything else; a client sends no call before
 *   it has them, so a server that does not speak framed (an HTTP/2 server's
 *   SETTINGS and GOAWAY, an HTTP/1.1 400, a close) has executed nothing and
 *   the client may fall back to HTTP/2 on a new connection.
 * - **TLS**: ALPN. The server offers {@link FRAMED_ALPN} besides `h2` and
 *   `http/1.1`; when both sides pick it, the connection speaks framed from
 *   its first byte, with no preface.
 *
 * The version ("/1") is part of both; a later version gets a new preface and
 * a new ALPN id, and a server answers only the ones it speaks.
 */
export const FRAMED_PREFACE = Buffer.from("\x89CPFRAMED/1\r\n", "latin1");

/** The ALPN protocol id of the framed protocol on TLS. */
export const FRAMED_ALPN = "connect-plugin-framed/1";

/** First byte of the preface: a connection that starts with it is not HTTP. */
export const FRAMED_PREFACE_FIRST_BYTE = 0x89;
