import { readFileSync } from "node:fs";

let version: string | undefined;

/** This connect-plugin's version, checked against manifests' `hostVersions`. */
export function hostVersion(): string {
  version ??= (
    JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
      version: string;
    }
  ).version;
  return version;
}
