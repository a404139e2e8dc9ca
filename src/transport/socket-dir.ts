import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The longest unix socket path Linux accepts is 107 bytes (108 with the
 * terminating NUL); macOS allows 103. Use the smaller so a plugin that works
 * on one works on both, and fall back to loopback TCP beyond it.
 */
export const MAX_UNIX_SOCKET_PATH = 103;

/**
 * A fresh directory that only the current user can enter (mode 0700), with a
 * socket path inside it. Other users cannot connect to a socket they cannot
 * reach, which is what makes a unix socket a private channel between host
 * and plugin.
 */
export interface PrivateSocket {
  readonly dir: string;
  readonly path: string;
  /** Removes the directory and the socket. Safe to call twice. */
  remove(): void;
}

/**
 * Creates a private socket directory under `parent` (go-plugin's
 * PLUGIN_UNIX_SOCKET_DIR when the host set it, the OS temp dir otherwise).
 * Returns undefined when the resulting path would be too long for a unix
 * socket, so that the caller can use loopback TCP instead.
 */
export function createPrivateSocket(parent: string = tmpdir()): PrivateSocket | undefined {
  if (process.platform === "win32") return undefined;
  // "/cp-XXXXXX/plugin.sock" adds 22 bytes to the parent.
  if (Buffer.byteLength(parent) + 22 > MAX_UNIX_SOCKET_PATH) return undefined;
  const dir = mkdtempSync(join(parent, "cp-"));
  chmodSync(dir, 0o700);
  return {
    dir,
    path: join(dir, "plugin.sock"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
