/**
 * Seed 004 (a Go plugin framework): the DataProcessor contract with
 * capabilities and config types; the host picks a plugin by capability,
 * among an installed Go plugin and a built-in TypeScript one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ManagementError, PluginManager } from "../src/management.js";
import {
  jsonCanonicalizer,
  jsonCanonicalizerConfigSchema,
} from "../examples/dataprocessor/json-canonicalizer.js";
import { pickByCapability } from "../examples/dataprocessor/pick.js";
import { DataProcessor, csvConfigSchema } from "../examples/dataprocessor/shared.js";
import { packageBinaryPlugin } from "../examples/shared/package-binary.js";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { tempDir } from "./helpers.js";
import { keysOnDisk, signAndInstall } from "./oci-helpers.js";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("DataProcessor plugins (seed 004): picked by capability", () => {
  let manager: PluginManager;
  before(async () => {
    const keys = keysOnDisk();
    const bin = await goBinaries({ "dataprocessor-csv": "./cmd/dataprocessor-csv" });
    const dir = join(tempDir("cp-dp-"), "csv");
    await packageBinaryPlugin(dir, {
      name: "csv",
      version: "1.0.0",
      description: "CSV to JSON (Go)",
      binary: bin["dataprocessor-csv"],
      plugins: [
        {
          name: "processor",
          service: DataProcessor.typeName,
          version: "1.0.0",
          capabilities: ["csv-to-json"],
        },
      ],
      configSchema: csvConfigSchema,
    });
    const pluginsDir = await signAndInstall(dir, keys);
    manager = new PluginManager({ directories: [pluginsDir], trustedKeysDir: keys.trustedDir });
    manager.registerBuiltin("json-canonical", {
      definition: jsonCanonicalizer,
      version: "1.0.0",
      description: "sorts JSON object keys (TypeScript, in process)",
      configSchema: jsonCanonicalizerConfigSchema,
    });
    await manager.scan();
  });
  after(async () => {
    await manager?.close();
    removeGoBinaries();
  });

  test("capabilities are known before anything starts, from manifests and definitions", () => {
    const caps = manager
      .list()
      .map((e) => [e.name, e.kind, e.provides.flatMap((p) => p.capabilities ?? [])]);
    assert.deepEqual(caps, [
      ["csv", "installed", ["csv-to-json"]],
      ["json-canonical", "builtin", ["json-canonicalize"]],
    ]);
  });

  test("the host picks by capability, passes each its config type, and chains them", async () => {
    const csv = pickByCapability(manager, "csv-to-json", { delimiter: ";", header: true });
    assert.deepEqual([csv.plugin, csv.kind], ["csv", "installed"]);
    const json = await csv.process(bytes("name;lang\nada;go\nlinus;c\n"));
    assert.equal(json.contentType, "application/json");
    assert.equal(text(json.output), '[{"lang":"go","name":"ada"},{"lang":"c","name":"linus"}]');
    const canon = pickByCapability(manager, "json-canonicalize", { indent: 1 });
    assert.deepEqual([canon.plugin, canon.kind], ["json-canonical", "builtin"]);
    const out = await canon.process(bytes('{"b":1,"a":{"d":2,"c":3}}'));
    assert.equal(text(out.output), '{\n "a": {\n  "c": 3,\n  "d": 2\n },\n "b": 1\n}');
    await assert.rejects(csv.process(bytes('a;b\n"unterminated')), /input is not valid CSV/);
  });

  test("an unknown capability or a config of the wrong type is refused with the reason", async () => {
    assert.throws(
      () => pickByCapability(manager, "xml-to-json"),
      (e: unknown) =>
        e instanceof ManagementError &&
        e.kind === "not-found" &&
        e.message ===
          'no DataProcessor plugin has the capability "xml-to-json" (available: csv-to-json (csv), json-canonicalize (json-canonical))',
    );
    await manager.close();
    assert.throws(
      () => pickByCapability(manager, "csv-to-json", { delimiter: ";;" }),
      /configuration for plugin "csv" is invalid: delimiter: must NOT have more than 1 characters/,
    );
    assert.throws(
      () => pickByCapability(manager, "json-canonicalize", { indent: "two" }),
      /configuration for plugin "json-canonical" is invalid: indent: must be integer/,
    );
  });
});
