import { readFileSync } from "node:fs";

/** This connect-plugin's version, checked against manifests' `hostVersions`. */
export const HOST_VERSION = (
  JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;
