import { createHash, timingSafeEqual } from "node:crypto";
import { replaceUserInfo } from "../transport/url-credentials.js";

/**
 * What the status page does to be safe to open: a CSP that allows only the
 * page's own inline script and style (by hash) and its event stream,
 * `nosniff`, an optional access token, and redaction of secrets in what it
 * shows (a URL's user:password, the values of secret-looking arguments).
 */

/** Headers for the page itself: CSP pinned to its inline script and style. */
export function pageHeaders(html: string): Record<string, string> {
  const hash = (tag: string): string => {
    const body = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html)?.[1] ?? "";
    return `'sha256-${createHash("sha256").update(body).digest("base64")}'`;
  };
  return {
    ...COMMON_HEADERS,
    "Content-Security-Policy":
      `default-src 'none'; script-src ${hash("script")}; style-src ${hash("style")}; ` +
      `connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  };
}

/** Headers for every answer. */
export const COMMON_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
};

const COOKIE = "connect_plugin_status";

/**
 * Checks a request against `token`: `Authorization: Bearer <token>`, the
 * cookie set by a visit to `?token=<token>`, or that query itself (which
 * returns the cookie to set, so the page's event stream is authorised too).
 */
export function checkToken(
  token: string,
  headers: Record<string, string | string[] | undefined>,
  query: string,
): { ok: boolean; setCookie?: string } {
  const matches = (given: string | undefined): boolean => {
    if (given === undefined) return false;
    const a = createHash("sha256").update(given).digest();
    return timingSafeEqual(a, createHash("sha256").update(token).digest());
  };
  const auth = headers.authorization;
  if (typeof auth === "string" && matches(/^Bearer\s+(.+)$/i.exec(auth)?.[1])) return { ok: true };
  const cookie = typeof headers.cookie === "string" ? headers.cookie : "";
  for (const part of cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === COOKIE && matches(decodeCookie(value.join("=")))) return { ok: true };
  }
  const fromQuery = new URLSearchParams(query).get("token") ?? undefined;
  if (matches(fromQuery)) {
    return {
      ok: true,
      setCookie: `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
    };
  }
  return { ok: false };
}

/**
 * A cookie value as set by checkToken, or undefined for a malformed one
 * ("%E0"): decodeURIComponent throws on it, and a throw in a request handler
 * would take down the server the page is mounted on.
 */
function decodeCookie(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** Names of arguments whose values are secrets. */
const SECRET_ARG = /(pass(word)?|token|secret|api[-_]?key|credential|auth)/i;

/**
 * `text` with secrets masked: user:password in URLs, `--token=x` and
 * `--token x` style arguments, `TOKEN=x` style assignments.
 */
export function redact(text: string): string {
  // All of a URL's user info (to the authority's last "@", as URL parsers
  // read it), the user name too: the page is for anyone with its token.
  let out = replaceUserInfo(text, "text", (scheme) => `${scheme}***@`);
  out = out.replace(/(\S*?)([=:])(\S+)/g, (whole, name: string, sep: string) =>
    SECRET_ARG.test(name) && !/:\/\//.test(whole) ? `${name}${sep}***` : whole,
  );
  const words = out.split(" ");
  for (let i = 0; i + 1 < words.length; i++) {
    if (/^--?[\w-]+$/.test(words[i] ?? "") && SECRET_ARG.test(words[i] ?? "")) words[i + 1] = "***";
  }
  return words.join(" ");
}
