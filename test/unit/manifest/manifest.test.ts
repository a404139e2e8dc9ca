/**
 * Manifest parsing and validation: the whole message a user gets for each
 * kind of mistake (the field by its path, every problem at once, in a fixed
 * order), the rules of each plugin kind, the file-path safety rule, and which
 * files and entrypoint a platform gets.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { stringify as toYaml } from "yaml";
import { ManagementError } from "../../../src/manifest/errors.js";
import { failsWith } from "../management-error.js";
import {
  entrypointFor,
  filesFor,
  manifestSchema,
  parseManifest,
  unsafePath,
  validateManifest,
} from "../../../src/manifest/manifest.js";
import { hostPlatform } from "../../../src/manifest/platform.js";
import { syntaxErrorText } from "../../../src/manifest/syntax-error.js";
import type { PluginManifest } from "../../../src/manifest/types.js";

const digest = (c: string): string => `sha256:${c.repeat(64)}`;

const good = {
  schemaVersion: 1,
  name: "greeter",
  version: "1.2.3",
  description: "says hello",
  license: "MIT",
  entrypoints: {
    "linux/amd64": { file: "bin/greeter" },
    "darwin/arm64": { file: "bin/greeter-mac" },
  },
  protocolVersions: [1],
  plugins: [{ name: "greeter", service: "greet.v1.Greeter" }],
  hostVersions: ">=0.1.0",
  files: { "bin/greeter": digest("a"), "bin/greeter-mac": digest("b"), "share/words": digest("c") },
};

/** The same plugin served elsewhere: no entrypoints, no files. */
const { entrypoints: _e, files: _f, ...service } = good;
const remotePlugin = { ...service, kind: "remote", endpoint: { url: "https://greeter.internal" } };
const clusterPlugin = {
  ...service,
  kind: "cluster",
  cluster: { discovery: { static: ["http://127.0.0.1:8081"] } },
};
const goPlugin = {
  ...good,
  kind: "go-plugin",
  goPlugin: { magicCookieKey: "BASIC_PLUGIN", magicCookieValue: "hello" },
};

const fails = failsWith;

/** validateManifest must refuse `value` with exactly these problems. */
function invalid(value: unknown, ...problems: string[]): void {
  fails(
    () => validateManifest(value, "manifest plugin.json"),
    "invalid-manifest",
    `invalid manifest plugin.json: ${problems.join("; ")}`,
  );
}

/** `good` with its linux/amd64 entrypoint given these extra settings. */
const withEntry = (settings: Record<string, unknown>) => ({
  ...good,
  entrypoints: { ...good.entrypoints, "linux/amd64": { file: "bin/greeter", ...settings } },
});

/** What a refused Node.js option is told, after its name. */
const NODE_OPTIONS_ALLOWED =
  "is not allowed; a manifest may give only --max-semi-space-size, --max-old-space-size, " +
  "--v8-pool-size, --stack-size, --single-threaded, --single-threaded-gc, --optimize-for-size, " +
  "--no-opt (options that load other code are refused)";

const NO_FILES =
  "files: lists no files; fill it in with " +
  "'connect-plugin sign <dir> --key <key> --update-files' (or 'connect-plugin init')";

describe("valid manifests", () => {
  test("each kind validates, and comes back with its fields", () => {
    for (const m of [good, goPlugin, { ...good, kind: "subprocess" }]) {
      assert.deepEqual(validateManifest(m), m);
    }
  });

  test("remote and cluster plugins get empty entrypoints and files", () => {
    for (const m of [remotePlugin, clusterPlugin]) {
      const v = validateManifest(m);
      assert.deepEqual(v, { ...m, entrypoints: {}, files: {} });
    }
    // Given empty, they stay empty.
    const explicit = { ...remotePlugin, entrypoints: {}, files: {} };
    assert.deepEqual(validateManifest(explicit), explicit);
  });

  test("a config schema with annotations of its own is accepted", () => {
    const configSchema = {
      type: "object",
      "x-order": ["greeting"],
      properties: { greeting: { type: "string" } },
    };
    assert.deepEqual(validateManifest({ ...good, configSchema }).configSchema, configSchema);
  });

  test("plugin capabilities and a config schema with required fields are kept", () => {
    const m = {
      ...good,
      plugins: [{ name: "greeter", service: "greet.v1.Greeter", capabilities: ["hello"] }],
      configSchema: {
        type: "object",
        required: ["greeting"],
        properties: { greeting: { type: "string" } },
      },
    };
    assert.deepEqual(validateManifest(m), m);
  });

  test("resource limits in whole numbers are kept", () => {
    const limits = { memoryMiB: 256, cpuSeconds: 60, openFiles: 1024 };
    assert.deepEqual(validateManifest({ ...good, limits }).limits, limits);
  });

  test("runtime node with heap and compiler options is kept as written", () => {
    const lean = {
      runtime: "node",
      nodeOptions: ["--max-semi-space-size=1", "--single-threaded-gc"],
    };
    assert.deepEqual(validateManifest(withEntry(lean)).entrypoints["linux/amd64"], {
      file: "bin/greeter",
      ...lean,
    });
  });

  test("a platform may share its entrypoint file with another", () => {
    const m = {
      ...good,
      entrypoints: { ...good.entrypoints, "linux/arm64": { file: "bin/greeter" } },
    };
    assert.equal(validateManifest(m).entrypoints["linux/arm64"]?.file, "bin/greeter");
  });
});

describe("schema problems name the field by its path", () => {
  test("a value that is not an object", () => {
    invalid(42, "(manifest): must be object");
    invalid(["greeter"], "(manifest): must be object");
  });

  test("a missing top-level field, and a missing nested one", () => {
    const { license: _l, ...noLicense } = good;
    invalid(noLicense, "license: is required");
    invalid({ ...good, plugins: [{ name: "greeter" }] }, "plugins.0.service: is required");
  });

  test("an unknown field, at the top and nested", () => {
    invalid({ ...good, colour: "blue" }, "colour: is not a known field");
    invalid(
      { ...good, entrypoints: { "linux/amd64": { file: "bin/greeter", shell: true } } },
      "entrypoints.linux/amd64.shell: is not a known field",
    );
  });

  test("a platform key that is not os/arch is named once", () => {
    invalid(
      { ...good, entrypoints: { linux: { file: "bin/greeter" } } },
      'entrypoints: has the key "linux", which is not os/arch',
    );
  });

  test("a value outside an enumeration lists the allowed values", () => {
    invalid(
      { ...good, kind: "daemon" },
      'kind: must be one of "subprocess", "go-plugin", "remote", "cluster"',
    );
    invalid(
      { ...clusterPlugin, cluster: { ...clusterPlugin.cluster, balancer: "random" } },
      'cluster.balancer: must be one of "least-outstanding", "round-robin"',
    );
  });

  test("other keywords carry ajv's message after the field", () => {
    invalid({ ...good, schemaVersion: 2 }, "schemaVersion: must be equal to constant");
    invalid(
      { ...good, protocolVersions: [] },
      "protocolVersions: must NOT have fewer than 1 items",
    );
  });

  test("escaped JSON-pointer characters in keys come out as written", () => {
    invalid(
      { ...good, files: { ...good.files, "a~b/c": "md5:x" } },
      'files.a~b/c: must match pattern "^sha256:[a-f0-9]{64}$"',
    );
  });

  test("a file digest that is not sha256 in lower-case hex", () => {
    const pattern = 'files.bin/greeter: must match pattern "^sha256:[a-f0-9]{64}$"';
    invalid({ ...good, files: { ...good.files, "bin/greeter": "md5:abc" } }, pattern);
    invalid(
      { ...good, files: { ...good.files, "bin/greeter": `sha256:${"A".repeat(64)}` } },
      pattern,
    );
  });

  test("resource limits below the floor, fractional, or unknown name the field", () => {
    invalid({ ...good, limits: { memoryMiB: 8 } }, "limits.memoryMiB: must be >= 16");
    invalid({ ...good, limits: { cpuSeconds: 1.5 } }, "limits.cpuSeconds: must be integer");
    invalid({ ...good, limits: { memory: 1 } }, "limits.memory: is not a known field");
    invalid(
      { ...good, limits: { memoryMiB: 8, cpuSeconds: 1.5, openFiles: 0 } },
      "limits.memoryMiB: must be >= 16",
      "limits.cpuSeconds: must be integer",
      "limits.openFiles: must be >= 16",
    );
  });

  test("an unknown runtime lists the runtimes there are", () => {
    invalid(
      withEntry({ runtime: "python" }),
      'entrypoints.linux/amd64.runtime: must be one of "exec", "node"',
    );
  });

  test("nodeOptions that are not a list", () => {
    invalid(
      withEntry({ runtime: "node", nodeOptions: "--no-opt" }),
      "entrypoints.linux/amd64.nodeOptions: must be array",
    );
  });

  test("files that are not a map of digests", () => {
    invalid({ ...good, files: "bin/greeter" }, NO_FILES);
    invalid({ ...good, files: [] }, NO_FILES);
  });

  test("a cluster's discovery must name exactly one source", () => {
    const one = "cluster.discovery: give exactly one of static, dnsSrv, kubernetes, etcd";
    invalid({ ...clusterPlugin, cluster: { discovery: {} } }, one);
    invalid(
      { ...clusterPlugin, cluster: { discovery: "dns" } },
      "cluster.discovery: must be object",
    );
    invalid(
      {
        ...clusterPlugin,
        cluster: {
          discovery: { static: ["http://127.0.0.1:1"], etcd: { hosts: ["h"], prefix: "p" } },
        },
      },
      one,
    );
  });

  test("each kind's own settings are required for it", () => {
    const { goPlugin: _g, ...noSettings } = goPlugin;
    invalid(noSettings, 'goPlugin: is required for kind "go-plugin"');
    invalid({ ...service, kind: "remote" }, 'endpoint: is required for kind "remote"');
    invalid({ ...service, kind: "cluster" }, 'cluster: is required for kind "cluster"');
    const { entrypoints: _x, ...noEntrypoints } = good;
    invalid(noEntrypoints, "entrypoints: is required");
    invalid(service, "entrypoints: is required", "files: is required");
  });

  test("every problem is listed, the kind's requirements after the common fields", () => {
    const { license: _l, goPlugin: _g, ...broken } = goPlugin;
    invalid(
      { ...broken, version: "one", kind: "go-plugin" },
      "license: is required",
      'version: must match pattern "^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?$"',
      'goPlugin: is required for kind "go-plugin"',
    );
    const { description: _d, ...noDescription } = service;
    invalid(
      { ...noDescription, kind: "remote", colour: "blue" },
      "description: is required",
      "colour: is not a known field",
      'endpoint: is required for kind "remote"',
    );
  });
});

describe("problems beyond the schema", () => {
  test("a launched plugin needs a platform and files", () => {
    invalid(
      { ...good, entrypoints: {}, files: {} },
      "entrypoints: names no platform; a subprocess plugin needs a program to run",
      NO_FILES,
    );
    invalid(
      { ...goPlugin, entrypoints: {} },
      "entrypoints: names no platform; a go-plugin plugin needs a program to run",
    );
    invalid({ ...goPlugin, files: {} }, NO_FILES);
  });

  test("a plugin that runs elsewhere launches nothing and ships nothing", () => {
    invalid(
      { ...remotePlugin, entrypoints: good.entrypoints },
      'entrypoints: a remote plugin runs elsewhere, so the host launches nothing and ships no files (kind "remote")',
    );
    invalid(
      { ...clusterPlugin, files: good.files },
      'files: a cluster plugin runs elsewhere, so the host launches nothing and ships no files (kind "cluster")',
    );
  });

  test("settings of another kind are refused", () => {
    invalid(
      { ...good, endpoint: { url: "https://x" } },
      'endpoint: is only for kind "remote", and this plugin is kind "subprocess"',
    );
    invalid(
      { ...remotePlugin, goPlugin: goPlugin.goPlugin, cluster: clusterPlugin.cluster },
      'goPlugin: is only for kind "go-plugin", and this plugin is kind "remote"',
      'cluster: is only for kind "cluster", and this plugin is kind "remote"',
    );
  });

  test("unsafe file paths, unlisted entrypoints, a bad host range, a bad config schema, a repeated plugin: all at once", () => {
    invalid(
      {
        ...good,
        entrypoints: { ...good.entrypoints, "linux/arm64": { file: "bin/missing" } },
        files: { ...good.files, "../escape": digest("d"), "/etc/passwd": digest("e") },
        hostVersions: "newest",
        configSchema: { type: "nonsense" },
        plugins: [...good.plugins, { name: "greeter", service: "greet.v2.Greeter" }],
      },
      "files.../escape: climbs out of the plugin directory (..)",
      "files./etc/passwd: is an absolute path",
      'entrypoints.linux/arm64.file: "bin/missing" is not listed in files',
      'hostVersions: "newest" is not a semver range',
      "configSchema: is not a valid JSON Schema (schema is invalid: data/type must be equal to one of the allowed values, data/type must be array, data/type must match a schema in anyOf)",
      'plugins: the name "greeter" appears twice',
    );
  });

  test("a Node.js option that loads other code is refused, each one named", () => {
    invalid(
      withEntry({
        runtime: "node",
        nodeOptions: ["--require=/tmp/x.js", "--import", "--max-old-space-size=64"],
      }),
      `entrypoints.linux/amd64.nodeOptions: "--require=/tmp/x.js" ${NODE_OPTIONS_ALLOWED}`,
      `entrypoints.linux/amd64.nodeOptions: "--import" ${NODE_OPTIONS_ALLOWED}`,
    );
  });

  test("a Node.js option in the wrong form says the form it needs", () => {
    invalid(
      withEntry({
        runtime: "node",
        nodeOptions: ["--max-semi-space-size", "--no-opt=1", "--stack-size=1e3"],
      }),
      'entrypoints.linux/amd64.nodeOptions: "--max-semi-space-size" must be --max-semi-space-size=N (a whole number)',
      'entrypoints.linux/amd64.nodeOptions: "--no-opt=1" must be --no-opt alone',
      'entrypoints.linux/amd64.nodeOptions: "--stack-size=1e3" must be --stack-size=N (a whole number)',
    );
    // A second "=" must not hide behind a valid number: Node would get the
    // whole string and refuse to start (or, in a later Node, read more).
    invalid(
      withEntry({
        runtime: "node",
        nodeOptions: ["--max-old-space-size=64=--require=/tmp/x.js", "--no-opt=1=2"],
      }),
      'entrypoints.linux/amd64.nodeOptions: "--max-old-space-size=64=--require=/tmp/x.js" must be --max-old-space-size=N (a whole number)',
      'entrypoints.linux/amd64.nodeOptions: "--no-opt=1=2" must be --no-opt alone',
    );
  });

  test("Node.js options on an entrypoint that does not run node", () => {
    const needNode =
      'entrypoints.linux/amd64.nodeOptions: Node.js options need runtime "node" (this entrypoint runs the file itself)';
    invalid(withEntry({ nodeOptions: ["--max-semi-space-size=1"] }), needNode);
    invalid(withEntry({ runtime: "exec", nodeOptions: ["--max-semi-space-size=1"] }), needNode);
  });

  test("plugins with different names are fine; the message names the repeated one", () => {
    const three = [
      { name: "a", service: "s.A" },
      { name: "b", service: "s.B" },
      { name: "a", service: "s.C" },
    ];
    invalid({ ...good, plugins: three }, 'plugins: the name "a" appears twice');
    assert.equal(validateManifest({ ...good, plugins: three.slice(0, 2) }).plugins.length, 2);
  });

  test("without a where, the message says manifest", () => {
    fails(
      () => validateManifest({ ...good, hostVersions: "newer" }),
      "invalid-manifest",
      'invalid manifest: hostVersions: "newer" is not a semver range',
    );
    fails(
      () => validateManifest(null),
      "invalid-manifest",
      "invalid manifest: (manifest): must be object",
    );
  });
});

describe("unsafePath", () => {
  test("relative /-separated paths are safe", () => {
    for (const p of [
      "greeter",
      "bin/greeter",
      ".hidden",
      "a/.b/c",
      "a..b",
      "...",
      "lib/a:b",
      "C",
    ]) {
      assert.equal(unsafePath(p), undefined, p);
    }
  });

  test("each way out of the plugin directory has its reason", () => {
    const reasons: Array<[string, string]> = [
      ["", "is empty"],
      ["bin/a\0b", "contains a NUL or a backslash"],
      ["bin\\greeter", "contains a NUL or a backslash"],
      ["/etc/passwd", "is an absolute path"],
      ["C:greeter", "is an absolute path"],
      ["z:/x", "is an absolute path"],
      ["..", "climbs out of the plugin directory (..)"],
      ["bin/../../x", "climbs out of the plugin directory (..)"],
      ["bin//greeter", "has an empty or '.' segment"],
      ["bin/", "has an empty or '.' segment"],
      ["./greeter", "has an empty or '.' segment"],
      ["bin/./greeter", "has an empty or '.' segment"],
    ];
    for (const [p, reason] of reasons) assert.equal(unsafePath(p), reason, JSON.stringify(p));
  });
});

describe("parseManifest", () => {
  test("YAML by a .yaml or .yml name in any case, JSON otherwise", () => {
    for (const name of ["plugin.yaml", "plugin.yml", "PLUGIN.YML", "dir/plugin.Yaml"]) {
      assert.deepEqual(parseManifest(toYaml(good), name), good, name);
    }
    assert.deepEqual(parseManifest(JSON.stringify(good), "plugin.json"), good);
    assert.deepEqual(parseManifest(JSON.stringify(good), "plugin"), good);
  });

  test("a JSON syntax error says line and column, not the offset", () => {
    fails(
      () => parseManifest('{\n  "name": "kv",\n  version: 1\n}', "plugin.json"),
      "invalid-manifest",
      "invalid manifest plugin.json: not valid JSON (Expected double-quoted property name in JSON at line 3, column 3)",
    );
  });

  test("only the last extension counts", () => {
    fails(
      () => parseManifest("{", "plugin.yml.json"),
      "invalid-manifest",
      `invalid manifest plugin.yml.json: not valid JSON (${jsonError("{")})`,
    );
  });

  test("text that does not parse names the format and the file", () => {
    fails(
      () => parseManifest(toYaml(good), "plugin.json"),
      "invalid-manifest",
      `invalid manifest plugin.json: not valid JSON (${jsonError(toYaml(good))})`,
    );
    assert.throws(
      () => parseManifest("name: [", "plugin.yml"),
      (e: unknown) => {
        assert.ok(e instanceof ManagementError);
        assert.equal(e.kind, "invalid-manifest");
        assert.match(e.message, /^invalid manifest plugin\.yml: not valid YAML \(.+\)$/s);
        return true;
      },
    );
  });

  test("a parsed manifest is validated, naming the file", () => {
    fails(
      () => parseManifest(JSON.stringify({ ...good, version: "1" }), "x/plugin.json"),
      "invalid-manifest",
      'invalid manifest x/plugin.json: version: must match pattern "^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?$"',
    );
  });
});

/** JSON.parse's message for `text`, with its position as line and column (syntax-error.ts). */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    return syntaxErrorText(text, e);
  }
  throw new Error("parsed");
}

describe("platforms", () => {
  const m = validateManifest(good);

  test("the entrypoint for a platform, by default this host's", () => {
    assert.deepEqual(entrypointFor(m, "darwin/arm64"), { file: "bin/greeter-mac" });
    const here = validateManifest({
      ...good,
      entrypoints: { [hostPlatform()]: { file: "bin/greeter" } },
    });
    assert.deepEqual(entrypointFor(here), { file: "bin/greeter" });
  });

  test("a platform without an entrypoint is named with the ones there are", () => {
    fails(
      () => entrypointFor(m, "windows/amd64"),
      "unsupported-platform",
      'plugin "greeter" 1.2.3 has no entrypoint for windows/amd64 (it supports: linux/amd64, darwin/arm64)',
    );
    fails(
      () => filesFor(m, "windows/amd64"),
      "unsupported-platform",
      'plugin "greeter" 1.2.3 has no entrypoint for windows/amd64 (it supports: linux/amd64, darwin/arm64)',
    );
  });

  test("a platform's files: its entrypoint and the shared files, not other platforms' programs", () => {
    assert.deepEqual(filesFor(m, "linux/amd64"), ["bin/greeter", "share/words"]);
    assert.deepEqual(filesFor(m, "darwin/arm64"), ["bin/greeter-mac", "share/words"]);
  });

  test("an entrypoint file shared by two platforms goes to both", () => {
    const shared = validateManifest({
      ...good,
      entrypoints: { ...good.entrypoints, "linux/arm64": { file: "bin/greeter" } },
    });
    assert.deepEqual(filesFor(shared, "linux/arm64"), ["bin/greeter", "share/words"]);
    assert.deepEqual(filesFor(shared, "darwin/arm64"), ["bin/greeter-mac", "share/words"]);
  });

  test("a plugin that runs elsewhere has no files for any platform", () => {
    assert.deepEqual(filesFor(validateManifest(remotePlugin), "linux/amd64"), []);
  });
});

test("the schema the validator uses is the published one", () => {
  const schema = manifestSchema();
  assert.equal(schema.$id, "https://connect-plugin.dev/schema/plugin-manifest.v1.json");
  assert.equal(manifestSchema(), schema, "read once");
  const published = JSON.parse(
    readFileSync(
      new URL("../../../../schema/plugin-manifest.schema.json", import.meta.url),
      "utf8",
    ),
  ) as { required: string[]; allOf: Array<{ else?: { required: string[] } }> };
  assert.deepEqual(schema, published, "the file users read is the one the validator compiles");
  assert.ok(published.required.includes("hostVersions"));
  // Files and entrypoints: required unless the plugin is remote or a cluster.
  assert.deepEqual(published.allOf[0]?.else?.required, ["entrypoints", "files"]);
  const typed: PluginManifest = validateManifest(good);
  assert.equal(typed.name, "greeter");
});
