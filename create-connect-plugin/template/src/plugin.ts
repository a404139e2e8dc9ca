/**
 * The plugin's main file. Started by a host, it serves on a private unix
 * socket; with CONNECT_PLUGIN_LISTEN=127.0.0.1:8080 it runs as a network
 * service (`npm run serve`); run by hand, it explains that it is a plugin
 * and exits. No top-level await: the build bundles it as CommonJS
 * (`connect-plugin code-cache`).
 */
import { serve } from "connect-plugin/plugin";
import { greeterPlugin } from "./definition.js";

void serve(greeterPlugin());
