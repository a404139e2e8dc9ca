import { PluginError } from "../protocol/errors.js";
import type { HandshakeLine } from "../protocol/handshake-line.js";
import {
  certificateFromHandshake,
  generateAutoMtlsCertificate,
  type AutoMtlsCertificate,
} from "../security/auto-mtls.js";
import type { PeerTls } from "../transport/goplugin-dial.js";

/**
 * The host's AutoMTLS certificate, made once per host process (a host may
 * launch many plugins). Its key never leaves this process; each plugin
 * still makes a fresh certificate of its own per launch, and the host
 * trusts only that one. P-256 rather than go-plugin's P-521: every TLS
 * handshake with a plugin signs with this key on the host and verifies it
 * in the plugin, on the plugin's path to its first call, and a P-521
 * signature costs about 30 times as much. Go plugins (crypto/tls) and
 * connect-plugin's accept either; GoPluginClient, a go-plugin host, keeps
 * P-521.
 */
let hostCertificate: AutoMtlsCertificate | undefined;

/**
 * AutoMTLS for one subprocess launch: the environment to pass (the host's
 * certificate in PLUGIN_CLIENT_CERT), and, once the handshake line is in,
 * the TLS to use with the plugin.
 *
 * `mode` is the source's `autoMTLS`: undefined uses mutual TLS when the
 * plugin answers with a certificate and plaintext (still behind the launch
 * token) when it does not; true requires it; false never offers it.
 */
export function autoMtlsForLaunch(mode: boolean | undefined): {
  readonly env: Record<string, string>;
  peer(line: HandshakeLine, label: string): PeerTls | undefined;
} {
  const own: AutoMtlsCertificate | undefined =
    mode === false ? undefined : (hostCertificate ??= generateAutoMtlsCertificate("P-256"));
  return {
    env: own === undefined ? {} : { PLUGIN_CLIENT_CERT: own.certPem },
    peer(line, label) {
      if (own === undefined) return undefined;
      if (line.serverCert === undefined) {
        if (mode !== true) return undefined;
        throw new PluginError(
          "malformed-handshake",
          `plugin ${label} sent no certificate in its handshake line, but autoMTLS is required; ` +
            `the plugin does not support go-plugin's AutoMTLS (PLUGIN_CLIENT_CERT)`,
        );
      }
      try {
        return {
          certPem: own.certPem,
          keyPem: own.keyPem,
          peerCertPem: certificateFromHandshake(line.serverCert),
        };
      } catch (error) {
        throw new PluginError(
          "malformed-handshake",
          `plugin ${label}: ${(error as Error).message}`,
        );
      }
    },
  };
}
