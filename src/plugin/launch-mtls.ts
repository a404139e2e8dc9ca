import { Env } from "../protocol/env.js";
import {
  certificateForHandshake,
  generateAutoMtlsCertificate,
  type AutoMtlsKeyType,
} from "../security/auto-mtls.js";
import { pemCertificates } from "../transport/pem-certificates.js";
import type { PeerTls } from "../transport/goplugin-dial.js";
import type { ServerTls } from "../transport/http-server.js";
import { pluginLog } from "./plugin-log.js";

/**
 * go-plugin's AutoMTLS: the host's certificate, PEM (set by go-plugin and
 * our hosts); a bundle of several is trusted whole, as go-plugin does.
 */
export const PLUGIN_CLIENT_CERT = "PLUGIN_CLIENT_CERT";

/** A launched plugin's side of AutoMTLS: its own certificate, and the host's to trust. */
export interface LaunchMtls {
  /** What the plugin's server uses: its certificate, and the host's as the only ones accepted (pinned). */
  readonly tls: ServerTls;
  /** The handshake line's certificate field. */
  readonly serverCert: string;
  /** The same pair for connections this plugin makes to its host (the go-plugin broker). */
  readonly peer: PeerTls;
}

/**
 * AutoMTLS for this launch, when the host sent PLUGIN_CLIENT_CERT: a fresh
 * certificate whose key type follows the host. A connect-plugin host (it
 * lists its transports in CONNECT_PLUGIN_TRANSPORTS) gets P-256; a go-plugin
 * host gets go-plugin's own P-521, so that the plugin's certificate is
 * exactly what a Go plugin's would be. Exits the process, with go-plugin's
 * words, when the host's certificate does not parse.
 */
export function launchMtls(): LaunchMtls | undefined {
  const clientCert = process.env[PLUGIN_CLIENT_CERT];
  // Read once and removed, as the launch token is: hosts this plugin
  // launches itself must not inherit its host's certificate.
  delete process.env[PLUGIN_CLIENT_CERT];
  if (clientCert === undefined || clientCert === "") return undefined;
  try {
    pemCertificates(clientCert);
  } catch (error) {
    // go-plugin's words; serving would refuse every client without saying why.
    pluginLog("error", "client cert provided but failed to parse", {
      env: PLUGIN_CLIENT_CERT,
      error: (error as Error).message,
    });
    process.exit(1);
  }
  // The words go-plugin's Go plugins log, so that logs read the same.
  pluginLog("debug", "configuring server automatic mTLS");
  const keyType: AutoMtlsKeyType = process.env[Env.transports] === undefined ? "P-521" : "P-256";
  const own = generateAutoMtlsCertificate(keyType);
  return {
    tls: { cert: own.certPem, key: own.keyPem, clientCert },
    serverCert: certificateForHandshake(own.der),
    peer: { certPem: own.certPem, keyPem: own.keyPem, peerCertPem: clientCert },
  };
}

/**
 * What `goPluginBroker()` needs from serve() when serve() did not load the
 * go-plugin side (the framed transport, which a connect-plugin host asked
 * for): recorded here so that the broker can still be made on first use.
 */
export function recordLaunchedBroker(options: BrokerOptions): void {
  brokerOptions = options;
}

/** What recordLaunchedBroker() recorded, if serve() launched this process. */
export function launchedBroker(): BrokerOptions | undefined {
  return brokerOptions;
}

interface BrokerOptions {
  readonly tls?: PeerTls;
  readonly socketDir?: string;
}

let brokerOptions: BrokerOptions | undefined;
