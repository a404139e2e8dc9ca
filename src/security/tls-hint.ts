/**
 * What to change when a remote plugin's (or a cluster instance's) TLS
 * handshake fails. Node's own
 * messages ("self-signed certificate in certificate chain", OpenSSL's
 * "tlsv13 alert certificate required") name the symptom, not the option
 * that fixes it, and are a newcomer's most likely first failure with
 * https://. The hint is chosen by the Node error code in the cause chain,
 * never by message text.
 */
import { hasNodeCode } from "../transport/node-errors.js";

/** Node codes for a server certificate that no trusted CA vouches for. */
const UNTRUSTED = [
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
];

/** `message` with `hint` after it (none: `message` as it is), as every TLS failure reports it. */
export function withHint(message: string, hint: string | undefined): string {
  return hint === undefined ? message : `${message.trimEnd()}; ${hint}`;
}

/** How the host's code gives TLS options to `source`: the start of the call, up to `tls:`. */
const OPTIONS_OF = { remote: "remote(url, {", cluster: "cluster({ discovery," } as const;

/**
 * A sentence saying which option of `source` (`remote()` or `cluster()`) or
 * which plugin setting fixes the TLS failure in `error`'s cause chain, or
 * undefined when the chain holds no TLS failure it knows.
 */
export function tlsHint(
  error: unknown,
  url: URL,
  source: keyof typeof OPTIONS_OF = "remote",
): string | undefined {
  const has = (code: string): boolean => hasNodeCode(error, code);
  const call = OPTIONS_OF[source];
  if (UNTRUSTED.some(has)) {
    return (
      `this host does not trust the plugin's certificate: give ${source}() the CA that ` +
      `signed it, ${call} tls: tlsFromFiles({ ca: "ca.pem" }) })`
    );
  }
  if (has("ERR_TLS_CERT_ALTNAME_INVALID")) {
    return (
      `the plugin's certificate is not issued for ${url.hostname}: use a URL whose host ` +
      "is one of the certificate's subjectAltName entries"
    );
  }
  if (has("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED")) {
    return (
      "the plugin requires a client certificate (CONNECT_PLUGIN_TLS_CLIENT_CA_FILE): give " +
      `${source}() one, ${call} tls: tlsFromFiles({ ca: "ca.pem", cert: "client.pem", ` +
      'key: "client-key.pem" }) })'
    );
  }
  if (has("ERR_SSL_WRONG_VERSION_NUMBER")) {
    return (
      `${url.host} did not answer TLS: if the plugin serves plain HTTP ` +
      "(no CONNECT_PLUGIN_TLS_CERT_FILE), its URL is http://"
    );
  }
  return undefined;
}
