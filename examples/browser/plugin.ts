/**
 * The KV example plugin as a network service that web pages may call. Its
 * address comes from CONNECT_PLUGIN_LISTEN and the allowed browser origins
 * from CONNECT_PLUGIN_CORS_ORIGINS (no code change needed for either); every
 * call must carry `authorization: Bearer $KV_DEMO_TOKEN`.
 */
import { requireBearer, serve } from "../../src/index.js";
import { kvPlugin } from "../kv/definition.js";

const token = process.env.KV_DEMO_TOKEN;
if (token === undefined || token === "") {
  process.stderr.write("set KV_DEMO_TOKEN to the bearer token callers must present\n");
  process.exit(2);
}
await serve(kvPlugin(), { interceptors: [requireBearer([token])] });
