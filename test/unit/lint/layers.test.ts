/**
 * eslint.layers.js: a backwards import between the folders of src/ fails
 * lint, and the imports the layers allow pass. Runs ESLint itself on probe
 * sources placed (in name only) in the folders concerned.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ESLint, type Linter } from "eslint";
import tseslint from "typescript-eslint";

// dist/test/unit/lint/ -> the repository root.
const root = fileURLToPath(new URL("../../../../", import.meta.url));

async function lintAs(file: string, source: string): Promise<string[]> {
  const layers = (await import(pathToFileURL(join(root, "eslint.layers.js")).href)) as {
    layerRules: () => Linter.Config[];
  };
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [
      { files: ["**/*.ts"], languageOptions: { parser: tseslint.parser } },
      ...layers.layerRules(),
    ],
  });
  const [result] = await eslint.lintText(source, { filePath: join(root, file) });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

test("a backwards import (transport -> host) fails lint with the layer rule", async () => {
  const messages = await lintAs(
    "src/transport/probe.ts",
    'import { PluginClient } from "../host/plugin-client.js";\nexport const x = PluginClient;\n',
  );
  assert.equal(messages.length, 1, messages.join("\n"));
  assert.match(
    messages[0]!,
    /^no-restricted-imports: .*src\/transport\/ may not import src\/host\/: imports flow down the layers/,
  );
});

test("backwards imports from a nested folder and through a re-export fail too", async () => {
  const nested = await lintAs(
    "src/transport/framed/probe.ts",
    'import { serve } from "../../plugin/serve.js";\nexport const x = serve;\n',
  );
  assert.match(nested.join("\n"), /src\/transport\/ may not import src\/plugin\//);
  const reexport = await lintAs(
    "src/manifest/probe.ts",
    'export { sha256 } from "../security/signing.js";\n',
  );
  assert.match(reexport.join("\n"), /src\/manifest\/ may not import src\/security\//);
});

test("imports the layers allow pass: down a layer, and within a folder", async () => {
  assert.deepEqual(
    await lintAs(
      "src/host/probe.ts",
      'import { ClusterTransport } from "../resilience/cluster-transport.js";\n' +
        'import { CallGuard } from "./call-guard.js";\nexport const x = [ClusterTransport, CallGuard];\n',
    ),
    [],
  );
});
