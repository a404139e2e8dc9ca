import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** `sha256:<hex>` of bytes. */
export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** `sha256:<hex>` of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/** The only digest form connect-plugin accepts: sha256, lower-case hex. */
export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

/** True when `value` is a well-formed `sha256:<64 hex>` digest. */
export function isDigest(value: unknown): boolean {
  return typeof value === "string" && DIGEST_PATTERN.test(value);
}
