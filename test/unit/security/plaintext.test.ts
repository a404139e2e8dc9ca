/** src/security/plaintext.ts: the one loopback rule, and its refusal message. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isLoopbackHost, plaintextRefusal } from "../../../src/security/plaintext.js";

test("loopback is localhost, 127.0.0.0/8 and ::1, as a URL parser gives them", () => {
  for (const url of [
    "http://localhost:1",
    "http://LOCALHOST:1",
    "http://127.0.0.1:1",
    "http://127.255.255.254/",
    "http://127.1/", // the URL parser reads this as 127.0.0.1
    "http://[::1]:1",
    "http://[0:0:0:0:0:0:0:1]/",
  ]) {
    assert.equal(isLoopbackHost(new URL(url).hostname), true, url);
  }
});

test("names and addresses that only look like loopback are not loopback", () => {
  for (const host of [
    "127.0.0.1.evil.test",
    "127.evil.test",
    "127.0.0.1.nip.io",
    "evil.localhost",
    "localhost.",
    "localhost.evil.test",
    "128.0.0.1",
    "10.0.0.1",
    "0.0.0.0",
    "::",
    "::2",
    "::ffff:127.0.0.1",
    "[::ffff:7f00:1]",
    "1::1",
    "",
  ]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
  // Through the URL parser too, which is how every caller gets its host.
  assert.equal(isLoopbackHost(new URL("http://127.0.0.1.evil.test:8080").hostname), false);
});

test("plaintext is refused to a non-loopback host unless the user opted in", () => {
  const far = new URL("http://127.0.0.1.evil.test:8080");
  assert.equal(
    plaintextRefusal(far, false, "host 127.0.0.1.evil.test"),
    "refusing plaintext http:// to non-loopback host 127.0.0.1.evil.test: use https://, " +
      "or pass { allowPlaintext: true } if the network is trusted",
  );
  assert.equal(plaintextRefusal(far, true, "host x"), undefined, "explicit opt-in");
  assert.equal(plaintextRefusal(new URL("https://10.0.0.1/"), false, "x"), undefined, "TLS");
  assert.equal(plaintextRefusal(new URL("http://127.0.0.1:1/"), false, "x"), undefined);
});

test("::1 in every spelling is loopback, given bare (as options pass it) or bracketed (as URLs do)", () => {
  for (const host of [
    "::1",
    "0::1",
    "::0:1",
    "0:0::0:1",
    "0000:0000:0000:0000:0000:0000:0000:0001",
    "0:0:0:0:0:0:0:1",
    "[0::1]",
    "[::1]",
    "::1%lo", // a zone on ::1 is still this machine
  ]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
});

test("IPv6 addresses that differ from ::1 in one group, or hide an IPv4 form, are not loopback", () => {
  for (const host of [
    "1::",
    "::1:0",
    "::1:1",
    "1::1",
    "0:0:0:0:0:0:1:1",
    "1:0:0:0:0:0:0:1",
    "0:0:0:0:0:0:0:2",
    "::10",
    "::1.0.0.1", // 1.0.0.1 in the last 32 bits: its low group reads 1, but it is not ::1
    "::0.0.0.1",
    "::ffff:127.0.0.1",
    "0:0:0:0:0:0:127.0.0.1",
    "0[::1]", // brackets count only around the whole host
    "[::]1",
    "[::1]1",
    "[[::1]]",
  ]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});

test("127.0.0.0/8 is decided by the first octet of a real IPv4 address", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "127.255.255.255"]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ["126.0.0.1", "1.127.0.0", "0.0.0.127", "127.0.0", "127.0.0.256", "127"]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
  assert.equal(
    plaintextRefusal(new URL("http://[::2]:80/"), false, "instance http://[::2]:80"),
    "refusing plaintext http:// to non-loopback instance http://[::2]:80: use https://, " +
      "or pass { allowPlaintext: true } if the network is trusted",
  );
  assert.equal(plaintextRefusal(new URL("http://[::1]:80/"), false, "x"), undefined);
});

test("a zone id is not part of the address: ::1 with any zone is loopback, nothing else is, and no zone throws", () => {
  // isIP() accepts zones holding ':' and '::' (a Host header can carry them):
  // only the address before '%' decides.
  for (const host of ["::1%lo", "::1%eth0.5", "0:0:0:0:0:0:0:1%a::b", "[::1%1]"]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of [
    "0:0:0:0:0:0:0:2%::1", // eight groups plus a zone with '::' (threw a RangeError)
    "1:2:3:4:5:6:7:8%a::b",
    "::0%0:1", // the unspecified address ::, its zone read as groups
    "::0%:1",
    "::%1",
    "fe80::1%lo",
  ]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
