/**
 * withMaskedCredentials: what status() shows of a URL with user info (the
 * password, or a user name without one, as `***`; the rest as given), next
 * to withoutUserInfo, which messages use. Pure functions; test/remote-url-credentials.test.ts shows
 * them in a real client's status(). The status page's redact (free text)
 * reads user info with the same pattern (replaceUserInfo).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { redact } from "../../../src/status/page-security.js";
import { withMaskedCredentials, withoutUserInfo } from "../../../src/transport/url-credentials.js";

test("withMaskedCredentials masks the password, or a user name given without one, and leaves the rest of the URL as given", () => {
  for (const [url, shown] of [
    ["http://ada:s3cret@127.0.0.1:8080", "http://ada:***@127.0.0.1:8080"],
    ["https://us%20er:p%3Aw%40x@host/path?q=a@b#f", "https://us%20er:***@host/path?q=a@b#f"],
    ["http://:s3cret@host/", "http://:***@host/"],
    // A user name with no password (none or empty) is the secret itself: a token.
    ["https://T0KEN@host/x", "https://***@host/x"],
    ["http://ada:@host", "http://***@host"],
    // Nothing secret to mask: empty user info, no user info.
    ["http://@host", "http://@host"],
    ["http://:@host", "http://:@host"],
    ["http://host/a@b", "http://host/a@b"],
  ]) {
    assert.equal(withMaskedCredentials(url as string), shown, url);
  }
});

test("both take the user info up to the authority's last @, as URL parsing does", () => {
  const url = "http://ada:se@cret@host/x";
  assert.equal(new URL(url).host, "host");
  assert.equal(withMaskedCredentials(url), "http://ada:***@host/x");
  assert.equal(withoutUserInfo(url), "http://host/x");
});

/**
 * given | redact (the page: all user info) | withMaskedCredentials | withoutUserInfo,
 * one case a line (`\n` in a row: a newline), as main's two regexes gave
 * them but for one URL spelled otherwise than node prints it (a leading
 * space, no "//", a "\" for "/" in http: but not foo:), which main showed
 * as given, its password with it: it is read as node's URL parser reads it;
 * and free text (the page) masks a special scheme's user info without "//"
 * as status() does (main showed `http:ada:s3cret@host` on the page in clear).
 */
const TABLE = String.raw`
http://a@b@c@host/x | http://***@host/x | http://***@host/x | http://host/x
http://ada:p@ss@w0rd@host:8080/p?q=1#f | http://***@host:8080/p?q=1#f | http://ada:***@host:8080/p?q=1#f | http://host:8080/p?q=1#f
http://host/p@th?q=x@y#fr@g | http://host/p@th?q=x@y#fr@g | http://host/p@th?q=x@y#fr@g | http://host/p@th?q=x@y#fr@g
http://ada:s@host/p@th?q=x@y#fr@g | http://***@host/p@th?q=x@y#fr@g | http://ada:***@host/p@th?q=x@y#fr@g | http://host/p@th?q=x@y#fr@g
http://host?q=a@b | http://host?q=a@b | http://host?q=a@b | http://host?q=a@b
http://host#a@b | http://host#a@b | http://host#a@b | http://host#a@b
http://[::1]:8080/x | http://[::1]:8080/x | http://[::1]:8080/x | http://[::1]:8080/x
http://ada:s3cret@[::1]:8080/x | http://***@[::1]:8080/x | http://ada:***@[::1]:8080/x | http://[::1]:8080/x
http://ada:s@c@[fe80::1%25eth0]/a@b | http://***@[fe80::1%25eth0]/a@b | http://ada:***@[fe80::1%25eth0]/a@b | http://[fe80::1%25eth0]/a@b
ada:s3cret@host/x | ada:s3cret@host/x | ada:s3cret@host/x | ada:s3cret@host/x
//ada:s3cret@host/x | //ada:s3cret@host/x | //ada:s3cret@host/x | //ada:s3cret@host/x
HTTPS://Ada:S3cret@Host/ | HTTPS://***@Host/ | HTTPS://Ada:***@Host/ | HTTPS://Host/
git+ssh://git:pw@example.com/repo | git+ssh://***@example.com/repo | git+ssh://git:***@example.com/repo | git+ssh://example.com/repo
http://a b:c@host/x | http://a b:c@host/x | http://a b:***@host/x | http://host/x
http://a:b\n@host/x | http://a:b\n@host/x | http://a:***@host/x | http://host/x
 http://ada:s3cret@host/x |  http://***@host/x | http://ada:***@host/x | http://host/x
http:ada:s3cret@host/x | http:***@host/x | http://ada:***@host/x | http://host/x
http:\\ada:s3cret@host/x | http:\\***@host/x | http://ada:***@host/x | http://host/x
https:/T0KEN@host | https:/***@host | https://***@host/ | https://host/
see http:ada:s3cret@h1/x, WS:u:p@h2 | see http:***@h1/x, WS:***@h2 | see http:ada:s3cret@h1/x, WS:u:p@h2 | see http:ada:s3cret@h1/x, WS:u:p@h2
mailto:ada@example.com | mailto:ada@example.com | mailto:ada@example.com | mailto:ada@example.com
foo:ada:s3cret@host | foo:ada:s3cret@host | foo:ada:s3cret@host | foo:ada:s3cret@host
http://ada\s3cret@host/x | http://***@host/x | http://ada\s3cret@host/x | http://ada\s3cret@host/x
foo://ada\s3cret@host/x | foo://***@host/x | foo://***@host/x | foo://host/x
see http://ada:s3cret@h1/x and https://T0KEN@h2:9/y?z=a@b, then ftp://u:p@h3 | see http://***@h1/x and https://***@h2:9/y?z=a@b, then ftp://***@h3 | see http://ada:s3cret@h1/x and https://T0KEN@h2:9/y?z=a@b, then ftp://u:p@h3 | see http://ada:s3cret@h1/x and https://T0KEN@h2:9/y?z=a@b, then ftp://u:p@h3
node p.js --url=http://ada:s3cret@h/x,http://bob:pw@h2 | node p.js --url=http://***@h/x,http://***@h2 | node p.js --url=http://ada:s3cret@h/x,http://bob:pw@h2 | node p.js --url=http://ada:s3cret@h/x,http://bob:pw@h2
x:http://ada:s3cret@h/http://u:p@h2/ | x:http://***@h/http://***@h2/ | x:http://ada:s3cret@h/http://u:p@h2/ | x:http://ada:s3cret@h/http://u:p@h2/
http://host/path/tcp://u:p@inner/x | http://host/path/tcp://***@inner/x | http://host/path/tcp://u:p@inner/x | http://host/path/tcp://u:p@inner/x
http://ada:@host | http://***@host | http://***@host | http://host
http://:@host | http://***@host | http://:@host | http://host
http://@host | http://***@host | http://@host | http://host
`;

test("one URL (status()) and free text (the status page) read user info alike: several @, @ after the authority, IPv6 hosts, no scheme, several URLs", () => {
  const rows = TABLE.split("\n").filter((line) => line !== "");
  assert.equal(rows.length, 31);
  for (const row of rows) {
    const [given, page, masked, without] = row.split(" | ").map((s) => s.replaceAll("\\n", "\n"));
    assert.equal(redact(given!), page, `redact ${JSON.stringify(given)}`);
    assert.equal(
      withMaskedCredentials(given!),
      masked,
      `withMaskedCredentials ${JSON.stringify(given)}`,
    );
    assert.equal(withoutUserInfo(given!), without, `withoutUserInfo ${JSON.stringify(given)}`);
  }
  // A URL string's whitespace is user info to the parser (spaces encoded, newlines dropped), free text's ends a URL.
  assert.equal(new URL("http://a:b\n@host/x").password, "b");
});

test("100 KB of text that looks like the start of URLs is scanned in linear time (no backtracking blow-up)", () => {
  // Each took 8-10 s with the regular expression /([a-z][a-z0-9+.-]*:\/\/)([^/?#\s]*)@/gi.
  const texts = [
    "a".repeat(100_000) + "://",
    "a://" + "x".repeat(100_000),
    "a1".repeat(50_000) + "://",
    "@:/".repeat(34_000),
    "a://:@".repeat(17_000),
    "http://u:p@h ".repeat(8_000),
    "http:".repeat(25_000),
    "http:x:".repeat(17_000),
    "http:u:p@h ".repeat(10_000),
  ];
  for (const text of texts) {
    const started = performance.now();
    redact(text);
    withMaskedCredentials(text);
    withoutUserInfo(text);
    const ms = performance.now() - started;
    assert.ok(ms < 1_000, `${ms.toFixed(0)} ms for ${JSON.stringify(text.slice(0, 12))}…`);
  }
});
