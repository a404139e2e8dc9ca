/**
 * withMaskedCredentials: what status() shows of a URL with user info (the
 * password, or a user name without one, as `***`; the rest as given), next
 * to withoutUserInfo, which messages use. Pure functions; test/remote-url-credentials.test.ts shows
 * them in a real client's status().
 */
import assert from "node:assert/strict";
import { test } from "node:test";
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
