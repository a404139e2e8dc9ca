/**
 * The KV plugin's main file. Started by a host, it serves on a private unix
 * socket; with CONNECT_PLUGIN_LISTEN=127.0.0.1:8080 it serves as a network
 * service; run by hand, it explains that it is a plugin and exits.
 */
import { serve } from "../../src/plugin.js";
import { kvPlugin } from "./definition.js";

await serve(kvPlugin());
