/**
 * What host and plugin agree on: the service (generated from
 * proto/greeter/v1/greeter.proto) and the handshake. The magic cookie is not
 * a secret: it stops the plugin from serving when a person runs it by hand.
 */
import type { HandshakeConfig } from "connect-plugin";

export { GreeterService } from "./gen/greeter/v1/greeter_pb.js";

export const handshake: HandshakeConfig = {
  magicCookieKey: "GREETER_PLUGIN",
  magicCookieValue: "a8f1c0de-greeter",
  protocolVersion: 1,
};
