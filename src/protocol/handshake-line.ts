import { CORE_PROTOCOL_VERSION, type WireProtocol } from "./env.js";
import { PluginError } from "./errors.js";

/**
 * The one line a subprocess plugin prints on stdout to tell its host where to
 * connect. Its format is go-plugin's, so that hosts and plugins of both
 * libraries understand each other:
 *
 *     CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVER_CERT|MUX
 *
 * CORE is always 1; APP is the negotiated protocol version; NETWORK is "unix"
 * or "tcp"; SERVER_CERT is the plugin's TLS certificate as unpadded base64 DER
 * (empty without AutoMTLS); MUX is "true" when go-plugin's gRPC multiplexing
 * is on. Go plugins always print the first six fields.
 */
export interface HandshakeLine {
  readonly coreVersion: number;
  readonly protocolVersion: number;
  readonly network: "unix" | "tcp";
  readonly address: string;
  readonly protocol: WireProtocol;
  /** Base64 (no padding) DER of the plugin's certificate, if it sent one. */
  readonly serverCert: string | undefined;
  readonly multiplex: boolean;
}

/** Formats a handshake line, without the trailing newline. */
export function formatHandshakeLine(line: Omit<HandshakeLine, "coreVersion">): string {
  const fields = [
    String(CORE_PROTOCOL_VERSION),
    String(line.protocolVersion),
    line.network,
    line.address,
    line.protocol,
    line.serverCert ?? "",
  ];
  if (line.multiplex) fields.push("true");
  return fields.join("|");
}

/**
 * Parses a handshake line the way go-plugin's host does: at least four
 * fields, the protocol defaulting to "netrpc", the certificate used only when
 * it is long enough to be one. Throws a PluginError that quotes the line.
 *
 * A line without a single "|" is not a handshake at all; it is reported as
 * unexpected output, because the usual cause is a plugin (or a library it
 * loads) printing to stdout before the handshake.
 */
export function parseHandshakeLine(raw: string): HandshakeLine {
  const text = raw.trim();
  const shown = JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
  if (!text.includes("|")) {
    throw new PluginError(
      "unexpected-output",
      `unexpected output on stdout before the handshake line: ${shown}. ` +
        `A plugin must print nothing on stdout before it; send logs to stderr.`,
    );
  }
  const parts = text.split("|");
  const malformed = (why: string): PluginError =>
    new PluginError("malformed-handshake", `malformed handshake line ${shown}: ${why}.`);

  if (parts.length < 4) {
    throw malformed(`expected at least 4 "|"-separated fields, got ${parts.length}`);
  }
  const [core, app, network, address, protocol = "netrpc", cert = "", mux = ""] = parts as [
    string,
    string,
    string,
    string,
    ...string[],
  ];
  const coreVersion = strictInt(core);
  if (coreVersion === undefined)
    throw malformed(`core version ${JSON.stringify(core)} is not an integer`);
  if (coreVersion !== CORE_PROTOCOL_VERSION) {
    throw malformed(
      `incompatible core protocol version: plugin speaks ${coreVersion}, host speaks ${CORE_PROTOCOL_VERSION}`,
    );
  }
  const protocolVersion = strictInt(app);
  if (protocolVersion === undefined) {
    throw malformed(`protocol version ${JSON.stringify(app)} is not an integer`);
  }
  if (network !== "unix" && network !== "tcp") {
    throw malformed(`network ${JSON.stringify(network)} is neither "unix" nor "tcp"`);
  }
  if (address === "") throw malformed("the address is empty");
  if (
    protocol !== "grpc" &&
    protocol !== "connect" &&
    protocol !== "framed" &&
    protocol !== "netrpc"
  ) {
    throw malformed(`unknown protocol ${JSON.stringify(protocol)}`);
  }
  return {
    coreVersion,
    protocolVersion,
    network,
    address,
    protocol,
    // go-plugin ignores certificates of 50 characters or fewer.
    serverCert: cert.length > 50 ? cert : undefined,
    multiplex: mux === "true",
  };
}

function strictInt(s: string): number | undefined {
  return /^-?\d+$/.test(s) ? Number.parseInt(s, 10) : undefined;
}
