/**
 * The plugin side only: `import { serve, implement } from "connect-plugin/plugin"`.
 *
 * A plugin's cold start is mostly module loading. The main entry also loads
 * the host side (PluginClient, and through it the HTTP/2 client,
 * over 100 ms of imports); this entry loads what serve() needs, and serve()
 * imports the HTTP adapter only if it ends up serving HTTP.
 */
export { serve, EXIT_CANNOT_SERVE, EXIT_NOT_LAUNCHED_BY_HOST } from "./plugin/serve.js";
export type { ServeHandle, ServeOptions } from "./plugin/serve.js";
export type { CorsOptions } from "./security/cors.js";
export { pluginLog } from "./plugin/plugin-log.js";
export { hostClient } from "./plugin/host-sessions.js";
export type { PluginServerOptions } from "./plugin/plugin-server.js";
export { implement } from "./protocol/plugin-set.js";
export type {
  HandshakeConfig,
  PluginDefinition,
  PluginImplementation,
  PluginImplementations,
} from "./protocol/plugin-set.js";
export { PluginError } from "./protocol/errors.js";
// The plugin side's auth and rate-limit interceptors
// (`serve(def, { interceptors: [requireBearer([token]), rateLimit({ perSecond: 10 })] })`),
// so that a plugin importing from this entry does not need the main one.
export { requireApiKey, requireBearer, verifiedPrincipal } from "./security/auth.js";
export { rateLimit } from "./security/rate-limit.js";
export type { RateLimitOptions } from "./security/rate-limit.js";
