import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** A user name and password (or token) for one registry. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Reads credentials for `registry` from docker's config.json, in
 * `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: the base64
 * `auth` ("user:pass") of `auths[registry]`, or its `username`/`password`.
 * Keys may be the bare host or a URL (`https://host/v1/`). Credential
 * helpers (`credsStore`, `credHelpers`) are not supported.
 */
export function dockerCredentials(
  registry: string,
  env: NodeJS.ProcessEnv = process.env,
): Credentials | undefined {
  const dir = env.DOCKER_CONFIG ?? join(homedir(), ".docker");
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as typeof config;
  } catch {
    return undefined;
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const host = key.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
    if (host !== registry) continue;
    if (entry.auth !== undefined && entry.auth !== "") {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon > 0)
        return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (entry.username !== undefined && entry.password !== undefined) {
      return { username: entry.username, password: entry.password };
    }
  }
  return undefined;
}
