/** Platforms are named as OCI names them (`linux/amd64`), not as Node does (`linux/x64`). */
const ARCH: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm" };

/** This host's platform in OCI terms, e.g. `linux/amd64`. */
export function hostPlatform(): string {
  return `${process.platform}/${ARCH[process.arch] ?? process.arch}`;
}

/** A platform name as manifests' `entrypoints` keys take it (schema/plugin-manifest.schema.json): `os/arch`, lower case. */
export const PLATFORM_PATTERN = /^[a-z0-9]+\/[a-z0-9]+$/;

/** Splits `os/arch` for an OCI index entry. */
export function splitPlatform(platform: string): { os: string; architecture: string } {
  const [os = "", architecture = ""] = platform.split("/");
  return { os, architecture };
}
