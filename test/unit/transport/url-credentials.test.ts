/**
 * withMaskedPassword: what status() shows of a URL with user info (the
 * password as `***`, the rest as given), next to withoutUserInfo, which
 * messages use. Pure functions; test/remote-url-credentials.test.ts shows
 * them in a real client's status().
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { withMaskedPassword, withoutUserInfo } from "../../../src/transport/url-credentials.js";

test("withMaskedPassword masks the password only, and leaves the rest of the URL as given", () => {
  for (const [url, shown] of [
    ["http://ada:s3cret@127.0.0.1:8080", "http://ada:***@127.0.0.1:8080"],
    ["https://us%20er:p%3Aw%40x@host/path?q=a@b#f", "https://us%20er:***@host/path?q=a@b#f"],
    ["http://:s3cret@host/", "http://:***@host/"],
    // Nothing secret to mask: a user alone, an empty password, no user info.
    ["http://ada@host", "http://ada@host"],
    ["http://ada:@host", "http://ada:@host"],
    ["http://host/a@b", "http://host/a@b"],
  ]) {
    assert.equal(withMaskedPassword(url as string), shown, url);
  }
});

test("both take the user info up to the authority's last @, as URL parsing does", () => {
  const url = "http://ada:se@cret@host/x";
  assert.equal(new URL(url).host, "host");
  assert.equal(withMaskedPassword(url), "http://ada:***@host/x");
  assert.equal(withoutUserInfo(url), "http://host/x");
});
