/**
 * The header that names a host's callback session (docs/callbacks.md): a
 * host that offers services sends it on its callback tunnel and on every
 * call it makes, so that a plugin handler reaches the tunnel of the host that
 * called it. The value is a random 256-bit secret in base64url.
 */
export const HOST_SESSION_HEADER = "connect-plugin-session";

/** A session id as hosts make them: 43 base64url characters. */
export function isSessionId(value: string | null | undefined): value is string {
  return typeof value === "string" && /^[A-Za-z0-9_-]{43}$/.test(value);
}
