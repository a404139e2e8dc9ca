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
 * Where a URL's user info is in `text`: a scheme, then the user info up to
 * the authority's last `@`, as URL parsers read it ("/", "?" and "#" end the
 * authority before it, so an `@` in the path, query or fragment is not one):
 * the one spelling of it, for status() (below) and the status page
 * (page-security.ts redact). `anchored`: one URL, at the start of `text`
 * (whitespace is user info then: the parser drops tabs and newlines and
 * encodes spaces); otherwise every URL in free text, whitespace ending one,
 * and there a special scheme's authority also without its "//"
 * (`http:user:pw@host`, `https:/user@host`), which node's parser reads as
 * one; a URL string (anchored) spelled so is read through the parser (see
 * replaceUserInfo). As the regular expression
 * /([a-z][a-z0-9+.-]*:\/\/)([^/?#\s]*)@/gi would find them (^ and no \s
 * when anchored), but in one pass: that expression backtracks
 * quadratically on a long run of letters, or a scheme followed by a long
 * authority without `@` (9 s for 100 KB).
 */
function findUserInfo(
  text: string,
  anchored: boolean,
  found: (start: number, infoStart: number, at: number) => void,
): void {
  /** Where the last match ended: the next one's scheme starts no earlier. */
  let floor = 0;
  /**
   * Where the last authority read without an `@` ended. A colon before it is
   * inside that authority (`ftp://http:8080/`), and must not start a match
   * without "//" there; a colon followed by "//" needs no such guard, since
   * a "/" ends an authority.
   */
  let bare = 0;
  // Every ":" may end a scheme: followed by "//", any scheme; without, (in
  // free text only) a special one.
  for (let colon = text.indexOf(":"); colon >= 0; colon = text.indexOf(":", colon + 1)) {
    const slashes = text.startsWith("//", colon + 1);
    if (!slashes && anchored) continue;
    let start = colon;
    while (start > floor && SCHEME_CHAR.test(text.charAt(start - 1))) start--;
    while (start < colon && !LETTER.test(text.charAt(start))) start++;
    if (start === colon || (anchored && start > 0)) {
      if (anchored) return;
      continue;
    }
    let infoStart = colon + 3;
    if (!slashes) {
      if (!SPECIAL_SCHEMES.has(text.slice(start, colon).toLowerCase())) continue;
      infoStart = colon + 1;
      while (text.charAt(infoStart) === "/" || text.charAt(infoStart) === "\\") infoStart++;
      if (infoStart < bare) continue;
    }
    let at = -1;
    let i = infoStart;
    for (; i < text.length; i++) {
      const c = text.charAt(i);
      if (c === "@") at = i;
      else if (c === "/" || c === "?" || c === "#" || (!anchored && /\s/.test(c))) break;
    }
    if (at >= 0) {
      found(start, infoStart, at);
      floor = at + 1;
    } else bare = i;
    if (anchored) return;
    // On to the next colon, wherever it is: one inside this authority had
    // no "@" to reach, and `bare` keeps it from starting a match without
    // "//"; one with "//" is at this authority's end or past it.
  }
}
/** Schemes node's parser reads an authority of without "//" (`http:host`); file: has no user info. */
const SPECIAL_SCHEMES = new Set(["http", "https", "ws", "wss", "ftp"]);
const SCHEME_CHAR = /[a-z0-9+.-]/i;
const LETTER = /[a-z]/i;

/** `text` with each user info findUserInfo finds (scheme, info, `@`) replaced by `mask`'s answer. */
function maskUserInfo(
  text: string,
  anchored: boolean,
  mask: (scheme: string, info: string) => string,
): string {
  let out = "";
  let from = 0;
  findUserInfo(text, anchored, (start, infoStart, at) => {
    out += text.slice(from, start) + mask(text.slice(start, infoStart), text.slice(infoStart, at));
    from = at + 1;
  });
  return from === 0 ? text : out + text.slice(from);
}

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
  if (within === "text") return maskUserInfo(text, false, mask);
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    return maskUserInfo(text, true, mask);
  }
  let given: string | undefined;
  findUserInfo(text, true, (_, infoStart, at) => (given = text.slice(infoStart, at)));
  if (given !== undefined && !(SPECIAL.has(parsed.protocol) && given.includes("\\"))) {
    return maskUserInfo(text, true, mask);
  }
  if (parsed.username === "" && parsed.password === "") return text;
  return maskUserInfo(parsed.href, true, mask);
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
