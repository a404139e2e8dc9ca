/**
 * What the jobs host and the jobs plugin share: the handshake and the two
 * services, Jobs (served by the plugin) and Progress (served by the host,
 * called back by the plugin).
 */
import type { HandshakeConfig } from "../../src/index.js";
export { Jobs, Progress } from "./gen/example/jobs/v1/jobs_pb.js";

export const handshake: HandshakeConfig = {
  magicCookieKey: "JOBS_PLUGIN",
  magicCookieValue: "report-progress",
  protocolVersion: 1,
};
