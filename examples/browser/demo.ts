/**
 * `npm run demo:browser`: the KV plugin as a network service, and a web page
 * on another origin that calls it over Connect and gRPC-web. Open the printed
 * URL in a browser; Ctrl-C stops both.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundlePage } from "./bundle.js";
import { launchBrowserPlugin, type RunningPlugin } from "./launch-plugin.js";
import { serveDemoPage } from "./static-server.js";

const bundleDir = mkdtempSync(join(tmpdir(), "connect-plugin-browser-"));
await bundlePage(bundleDir);
const token = randomBytes(16).toString("hex");
// The page's origin must be known to start the plugin, and the plugin's URL to serve the page.
const started: { plugin?: RunningPlugin } = {};
const page = await serveDemoPage(bundleDir, () => ({
  pluginUrl: started.plugin?.url ?? "",
  token,
}));
const plugin = await launchBrowserPlugin([page.origin], token);
started.plugin = plugin;
console.log(`plugin: ${plugin.url} (allows origin ${page.origin})`);
console.log(`page:   ${page.origin}/  (open it in a browser; Ctrl-C to stop)`);
process.once("SIGINT", () => {
  void Promise.all([plugin.stop(), page.close()]).then(() => process.exit(0));
});
