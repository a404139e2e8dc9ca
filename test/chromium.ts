import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { tempDir } from "./helpers.js";

/** Debian's chromium package; playwright-core never downloads a browser. */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * Debian's headless Chromium with a fresh profile, driven by playwright-core.
 * Background networking, updates, sync and QUIC are off, and every host name
 * resolves to nothing, so the browser only reaches the loopback addresses
 * the tests give it.
 */
export async function launchChromium(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(tempDir("chromium-profile-"), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ],
    viewport: { width: 1100, height: 700 },
  });
}

/**
 * Where a test saves a screenshot: $CONNECT_PLUGIN_SCREENSHOTS if set (to
 * look at them afterwards), else a temporary directory removed at exit.
 */
export function screenshotPath(name: string): string {
  const dir = process.env.CONNECT_PLUGIN_SCREENSHOTS ?? tempDir("screenshots-");
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
