/**
 * A plugin URL's user info (`https://user:password@host/`), one way for
 * both HTTP versions: node:http sends it as Basic auth when the request
 * has no authorization header of its own (H1Pool gives it node:http's
 * `auth` option), and H2Session sends the same header over HTTP/2. The
 * password never goes into a message: see withoutUserInfo.
 */

/** The base URL up to its path: scheme, user info if any, host and port, as the URL's string spells them. */
export function originOf(url: URL): string {
  const href = url.href;
  return href.slice(0, href.length - (url.pathname + url.search + url.hash).length);
}

/** `user:password` of `url`, decoded, as node:http's `auth` option takes it; undefined without user info. */
export function urlCredentials(url: URL): string | undefined {
  return url.username === "" && url.password === ""
    ? undefined
    : `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
}

/** The authorization header node:http makes of its `auth` option (UTF-8, base64). */
export function basicAuthorization(credentials: string): string {
  return `Basic ${Buffer.from(credentials).toString("base64")}`;
}

/** The Basic authorization header for `url`'s user info; undefined without user info. */
export function urlAuthorization(url: URL): string | undefined {
  const credentials = urlCredentials(url);
  return credentials === undefined ? undefined : basicAuthorization(credentials);
}

/**
 * A URL's scheme, then its user info up to the authority's last `@`, as URL
 * parsers read it ("/", "?" and "#" end the authority before it, so an `@`
 * in the path, query or fragment is not one): the one spelling of it, for
 * status() (below) and the status page (page-security.ts redact). `ends`:
 * what else ends the user info.
 */
const userInfo = (anchor: "^" | "", ends: string, flags: string): RegExp =>
  new RegExp(`${anchor}([a-z][a-z0-9+.-]*:\\/\\/)([^/?#${ends}]*)@`, flags);
/** In one URL string, at its start: the parser drops tabs and newlines and encodes spaces, so whitespace is user info. */
const URL_USER_INFO = userInfo("^", "", "i");
/** In free text, every URL in it: whitespace ends a URL. */
const TEXT_USER_INFO = userInfo("", "\\s", "gi");
/** Schemes whose URLs node's parser (WHATWG's) reads with "\" for "/". */
const SPECIAL = new Set(["http:", "https:", "ws:", "wss:", "ftp:", "file:"]);

/**
 * `text` with the user info of its URLs (scheme and user info without the
 * `@`, see userInfo) replaced by what `mask` makes of it, `@` included.
 * `text` is free text ("text": every URL in it, as a command line or a log
 * line spells them) or one URL ("url"), whose user info is the one node's
 * URL parser reads, which the transports send: as given where the string
 * spells it as the parser reads it, otherwise in the parser's own form
 * (its href: for leading spaces, `http:user:pw@host`, a "\" for a "/");
 * a string the parser refuses, as given.
 */
export function replaceUserInfo(
  text: string,
  within: "url" | "text",
  mask: (scheme: string, info: string) => string,
): string {
  const replace = (_: string, scheme: string, info: string): string => mask(scheme, info);
  if (within === "text") return text.replace(TEXT_USER_INFO, replace);
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    return text.replace(URL_USER_INFO, replace);
  }
  const given = URL_USER_INFO.exec(text);
  if (given !== null && !(SPECIAL.has(parsed.protocol) && given[2]?.includes("\\") === true)) {
    return text.replace(URL_USER_INFO, replace);
  }
  if (parsed.username === "" && parsed.password === "") return text;
  return parsed.href.replace(URL_USER_INFO, replace);
}

/**
 * `url` with its secret shown as `***`, for what reports where a plugin is
 * (PluginClient.status()'s `where` and endpoints, PluginManager.status()'s
 * `location`): the password, the user name staying to tell instances
 * apart; or, with no password (none or empty), the user name, which is then
 * the secret (`https://TOKEN@host`). The rest stays as given (but see
 * replaceUserInfo: a URL spelled otherwise than node reads it is shown in
 * node's form).
 */
export function withMaskedCredentials(url: string): string {
  return replaceUserInfo(url, "url", (scheme, info) => {
    const colon = info.indexOf(":");
    const user = colon < 0 ? info : info.slice(0, colon);
    if (colon >= 0 && colon < info.length - 1) return `${scheme}${user}:***@`;
    return user === "" ? `${scheme}${info}@` : `${scheme}***@`;
  });
}

/** `url` without its user info (user and password), for messages. */
export function withoutUserInfo(url: string): string {
  return replaceUserInfo(url, "url", (scheme) => scheme);
}
