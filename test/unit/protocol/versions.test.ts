/**
 * src/protocol/versions.ts: go-plugin's version rule (the highest version
 * both sides list), PLUGIN_PROTOCOL_VERSIONS parsing, and the "[1, 2]" form
 * the incompatible-version errors quote.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatVersions,
  negotiateVersion,
  parseVersionList,
} from "../../../src/protocol/versions.js";

test("negotiation picks the highest common version, whatever order either side lists them in", () => {
  assert.equal(negotiateVersion([1, 2, 3], [3, 2, 1]), 3);
  assert.equal(negotiateVersion([3, 1, 2], [1, 2, 3]), 3);
  assert.equal(negotiateVersion([1, 2], [2, 5, 1]), 2, "5 is the plugin's only");
  assert.equal(negotiateVersion([0], [0]), 0, "0 is a version");
  assert.equal(negotiateVersion([1, 2], [3, 4]), undefined);
  assert.equal(negotiateVersion([], [1]), undefined);
  assert.equal(negotiateVersion([1], []), undefined);
});

test("PLUGIN_PROTOCOL_VERSIONS: whole decimal numbers, blanks around them allowed, anything else skipped", () => {
  assert.deepEqual(parseVersionList("1,2"), [1, 2]);
  assert.deepEqual(parseVersionList(" 3 ,\t1 , 2\n"), [3, 1, 2], "order kept, blanks trimmed");
  assert.deepEqual(parseVersionList("2abc,0,-1,1.5,,x,07"), [0, 7]);
  assert.deepEqual(parseVersionList(undefined), [], "not set");
  assert.deepEqual(parseVersionList(""), []);
  assert.deepEqual(parseVersionList("   "), []);
});

test("versions in error messages: ascending numerically, the caller's list left as it was", () => {
  const mine = [10, 9, 2];
  assert.equal(formatVersions(mine), "[2, 9, 10]");
  assert.deepEqual(mine, [10, 9, 2], "not sorted in place");
  assert.equal(formatVersions([1]), "[1]");
  assert.equal(formatVersions([]), "[]");
});
