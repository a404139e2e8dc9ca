/**
 * parseReference's error kinds: a malformed reference is "invalid-config"
 * (CLI exit 7) whether or not it names a registry; a well-formed one with
 * no registry anywhere is "not-found" (exit 4). Whichever part is wrong,
 * the answer does not depend on the order the parts are checked in.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManagementError } from "../../../src/manifest/errors.js";
import { parseReference } from "../../../src/oci/reference.js";

const kindOf = (text: string, registry?: string): string => {
  try {
    parseReference(text, registry);
    return "parsed";
  } catch (e) {
    assert.ok(e instanceof ManagementError, String(e));
    return e.kind;
  }
};

test("a malformed digest, repository or tag is invalid-config, with a registry or without one; no registry at all is not-found", () => {
  for (const text of ["kv@sha256:zz", "KV:1.0.0", "kv:bad^tag", "KV"]) {
    assert.equal(kindOf(text), "invalid-config", `${text}, no registry`);
    assert.equal(kindOf(text, "registry.test"), "invalid-config", `${text}, default registry`);
    assert.equal(kindOf(`registry.test/${text}`), "invalid-config", `registry.test/${text}`);
  }
  for (const text of ["kv", "kv:1.0.0", `kv@sha256:${"a".repeat(64)}`, "team/kv"]) {
    assert.equal(kindOf(text), "not-found", `${text}, no registry`);
    assert.equal(kindOf(text, "registry.test"), "parsed", `${text}, default registry`);
  }
});
