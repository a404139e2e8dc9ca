/**
 * What an npm user gets: the packed package's contents (license, docs whose
 * links resolve, source maps whose sources ship, no unused dependencies),
 * and the path from `npm create connect-plugin` to a running plugin. Both
 * packages are packed, the scaffold writes a project into an empty folder,
 * and one `npm install` (registry packages plus the two tarballs) serves
 * every test below: `npm start` runs the plugin in all three locations, the
 * app type-checks without skipLibCheck and without the optional peers, and
 * the scaffold's own esbuild bundle (what its host starts) and the recipe of
 * docs/local-transports.md give bundles that run where no node_modules is
 * reachable, and a plugin's handler calls back a
 * host service the app registers (docs/callbacks.md) from a subprocess and
 * from a remote plugin.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { before, describe, test } from "node:test";
import { build, type BuildOptions } from "esbuild";
import semver from "semver";
import { startNetworkPlugin, tempDir } from "./helpers.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const SLOW = { timeout: 15 * 60_000 };

/**
 * The environment for npm run in another project: without the npm_* variables
 * that the outer `npm test` sets (its prefix, its package's fields).
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")),
  );
  return { ...env, npm_config_update_notifier: "false", ...extra };
}

async function npm(cwd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run("npm", args, { cwd, env: cleanEnv(), maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(" ")} in ${cwd} failed:\n${err.stdout}\n${err.stderr}`);
  }
}

interface Packed {
  file: string;
  files: string[];
}

/** `npm pack` without lifecycle scripts (the suite has built dist already). */
/** What `npm create connect-plugin@latest <name>` runs, with the packed scaffold. */
function scaffold(
  work: string,
  create: Packed,
  name: string,
): Promise<{ stdout: string; stderr: string }> {
  return npm(work, [
    "exec",
    "--yes",
    `--package=${create.file}`,
    "--",
    "create-connect-plugin",
    name,
  ]);
}

async function pack(dir: string, into: string): Promise<Packed> {
  const { stdout } = await npm(dir, [
    "pack",
    "--ignore-scripts",
    "--json",
    "--pack-destination",
    into,
  ]);
  const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  assert.ok(info !== undefined);
  return { file: join(into, info.filename), files: info.files.map((f) => f.path) };
}

describe("the published package", SLOW, () => {
  let packed: Packed;
  before(async () => {
    packed = await pack(root, tempDir("cp-pack-"));
  });

  test("ships its license, README, docs, the sources its source maps name, and no test code", () => {
    const files = new Set(packed.files);
    for (const f of ["LICENSE", "README.md", "package.json", "docs/cli.md", "src/index.ts"]) {
      assert.ok(files.has(f), `${f} is not in the package`);
    }
    assert.match(readFileSync(join(root, "LICENSE"), "utf8"), /Apache License\s+Version 2\.0/);
    assert.ok(!packed.files.some((f) => f.startsWith("test/") || f.startsWith("dist/test/")));
    const maps = packed.files.filter((f) => f.endsWith(".js.map"));
    assert.ok(maps.length > 50, `only ${maps.length} source maps`);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(root, map), "utf8")) as {
        sources: string[];
      };
      for (const source of sources) {
        const path = normalize(join(dirname(map), source));
        assert.ok(files.has(path), `${map} points at ${path}, which is not shipped`);
      }
    }
  });

  test("every relative link in the shipped README and docs points at a shipped file", () => {
    const files = new Set(packed.files);
    const docs = packed.files.filter((f) => f.endsWith(".md"));
    let links = 0;
    for (const doc of docs) {
      const text = readFileSync(join(root, doc), "utf8");
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (target === undefined || /^[a-z]+:/i.test(target) || target.startsWith("#")) continue;
        const path = normalize(join(dirname(doc), target.replace(/#.*$/, "")));
        links++;
        assert.ok(
          files.has(path) || packed.files.some((f) => f.startsWith(`${path}/`)),
          `${doc} links to ${target}, which is not in the package`,
        );
      }
    }
    assert.ok(links > 10, `only ${links} links checked`);
  });

  test("has repository, homepage and bugs, builds before packing, and no unused dependency", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      repository: { url: string };
      homepage: string;
      bugs: { url: string };
      scripts: Record<string, string>;
      dependencies: Record<string, string>;
    };
    assert.match(pkg.repository.url, /^git\+https:\/\//);
    assert.match(pkg.homepage, /^https:\/\//);
    assert.match(pkg.bugs.url, /^https:\/\//);
    assert.equal(pkg.scripts.prepack, "npm run build");
    // Every runtime dependency is imported by some shipped module.
    const code = packed.files
      .filter((f) => f.startsWith("dist/src/") && f.endsWith(".js"))
      .map((f) => readFileSync(join(root, f), "utf8"))
      .join("\n");
    for (const dep of Object.keys(pkg.dependencies)) {
      assert.ok(code.includes(`"${dep}"`) || code.includes(`"${dep}/`), `${dep} is never imported`);
    }
  });
});

describe("npm create connect-plugin, npm install, npm start", SLOW, () => {
  let project: string;
  let created: string;
  before(async () => {
    const packs = tempDir("cp-packs-");
    const lib = await pack(root, packs);
    const create = await pack(join(root, "create-connect-plugin"), packs);
    const work = tempDir("cp-scaffold-");
    created = (await scaffold(work, create, "my-plugin")).stdout;
    project = join(work, "my-plugin");
    // The registry's packages, with this checkout's connect-plugin instead of the published one.
    await npm(project, ["install", "--no-audit", "--no-fund", lib.file]);
  });

  test("the scaffold writes an ESM project with its proto, buf config, tsconfig and a separate definition module", () => {
    assert.match(created, /cd my-plugin\n\s+npm install\n\s+npm start/);
    const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as {
      name: string;
      type: string;
      scripts: Record<string, string>;
    };
    assert.equal(pkg.name, "my-plugin");
    assert.equal(pkg.type, "module");
    assert.match(pkg.scripts.start ?? "", /node dist\/host\.js/);
    assert.match(
      readFileSync(join(project, "buf.gen.yaml"), "utf8"),
      /target=ts[\s\S]*import_extension=js/,
    );
    for (const f of [
      "proto/greeter/v1/greeter.proto",
      "src/definition.ts",
      "src/plugin.ts",
      "src/host.ts",
      ".gitignore",
    ]) {
      assert.ok(existsSync(join(project, f)), `${f} missing`);
    }
    // Importing the definition must not start a server (inProcess() imports it).
    assert.doesNotMatch(
      readFileSync(join(project, "src/definition.ts"), "utf8"),
      /\bserve\b[^(]*from|await serve/,
    );
  });

  test("npm start runs the plugin as a subprocess, as a remote service and in process", async () => {
    const { stdout } = await npm(project, ["start"]);
    for (const where of ["subprocess", "remote", "in-process"]) {
      assert.match(
        stdout,
        new RegExp(`^${where}: Hello, ${where}! countDown\\(3\\) = 3, 2, 1$`, "m"),
      );
    }
  });

  test("the app type-checks with skipLibCheck false although etcd3 and @kubernetes/client-node are not installed", async () => {
    assert.ok(!existsSync(join(project, "node_modules/etcd3")));
    assert.ok(!existsSync(join(project, "node_modules/@kubernetes/client-node")));
    if (!existsSync(join(project, "src/gen"))) await npm(project, ["run", "generate"]);
    // An app that uses the discovery API without those packages.
    writeFileSync(
      join(project, "src/uses-discovery.ts"),
      'import { etcdDiscovery, kubernetesDiscovery } from "connect-plugin";\n' +
        'export const d = [etcdDiscovery({ hosts: ["http://127.0.0.1:2379"], prefix: "/p/", client: { dialTimeout: 500 } }),\n' +
        '  kubernetesDiscovery({ namespace: "n", service: "s" })];\n',
    );
    await npm(project, ["exec", "--", "tsc", "-p", ".", "--noEmit", "--skipLibCheck", "false"]);
  });

  test("the esbuild recipe (docs/local-transports.md) bundles a plugin that runs with no node_modules in reach", async () => {
    if (!existsSync(join(project, "dist/plugin.js"))) await npm(project, ["run", "build"]);
    const out = join(tempDir("cp-bundle-"), "plugin");
    mkdirSync(out);
    // The recipe: npx esbuild src/plugin.ts --bundle --platform=node --format=esm --target=node20
    //   --splitting --out-extension:.js=.mjs --outdir=...
    const recipe: BuildOptions = {
      entryPoints: [join(project, "src/plugin.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      logLevel: "error",
    };
    await build({ ...recipe, splitting: true, outExtension: { ".js": ".mjs" }, outdir: out });
    // Nothing is left outside the bundle: connect-plugin has no dependency on @connectrpc/connect-node.
    assert.doesNotMatch(readFileSync(join(out, "plugin.mjs"), "utf8"), /from\s*"@connectrpc\//);
    assert.ok(readdirSync(out).length > 1, "expected lazily loaded chunks next to plugin.mjs");

    const host = join(project, "check-bundle.mjs");
    writeFileSync(host, CHECK_BUNDLE);
    const { stdout } = await run(process.execPath, [host, join(out, "plugin.mjs")], {
      cwd: project,
      env: cleanEnv(),
    });
    assert.equal(stdout, "Hello, bundle!\n");
  });

  test("the scaffold's build bundles the plugin that its host starts, with its code cache, and the bundle runs with no node_modules in reach", async () => {
    if (!existsSync(join(project, "dist/bundle/plugin.cjs"))) await npm(project, ["run", "build"]);
    assert.match(readFileSync(join(project, "dist/host.js"), "utf8"), /"\.\/bundle\/plugin\.cjs"/);
    // Copied away from the project: nothing may be left to resolve from its node_modules.
    const out = join(tempDir("cp-own-bundle-"), "bundle");
    cpSync(join(project, "dist/bundle"), out, { recursive: true });
    assert.ok(existsSync(join(out, "plugin.bundle.cjs.map")), "the bundle has no source map");
    assert.doesNotMatch(
      readFileSync(join(out, "plugin.bundle.cjs"), "utf8"),
      /(from\s*|require\()"(@connectrpc|@bufbuild|connect-plugin)/,
    );
    // The loader uses the cache the build made (connect-plugin code-cache).
    const checked = await run(process.execPath, [join(out, "plugin.cjs")], {
      env: cleanEnv({ CONNECT_PLUGIN_CODE_CACHE: "check" }),
    }).catch((e: { stderr: string }) => e);
    assert.match(checked.stderr, /^connect-plugin code cache: used$/m);
    writeFileSync(join(project, "check-own-bundle.mjs"), CHECK_BUNDLE);
    const { stdout } = await run(
      process.execPath,
      ["check-own-bundle.mjs", join(out, "plugin.cjs")],
      {
        cwd: project,
        env: cleanEnv(),
      },
    );
    assert.equal(stdout, "Hello, bundle!\n");
  });

  test("host services: the plugin's handler calls the app back, as a subprocess and as a remote plugin", async () => {
    // A host service from the app's own .proto, generated by the scaffold's build (buf.gen.yaml).
    mkdirSync(join(project, "proto/stamp/v1"), { recursive: true });
    writeFileSync(join(project, "proto/stamp/v1/stamp.proto"), STAMP_PROTO);
    writeFileSync(join(project, "src/stamp-plugin.ts"), STAMP_PLUGIN);
    writeFileSync(join(project, "src/stamp-host.ts"), STAMP_HOST);
    // The scaffold's build (buf generate, then tsc with its tsconfig: skipLibCheck false).
    await npm(project, ["run", "build"]);
    const token = randomUUID();
    const service = await startNetworkPlugin("", {}, join(project, "dist/stamp-plugin.js"));
    let stdout: string;
    try {
      ({ stdout } = await run(process.execPath, ["dist/stamp-host.js", token, service.url], {
        cwd: project,
        env: cleanEnv(),
        timeout: 5 * 60_000,
      }));
    } finally {
      await service.stop();
    }
    assert.equal(
      stdout,
      `subprocess: Hello, plugin:subprocess@${token}! (host saw plugin:subprocess)\n` +
        `remote: Hello, plugin:remote@${token}! (host saw plugin:remote)\n`,
    );
  });
});

/**
 * The newest @connectrpc/connect 2.x whose `engines` admit this Node (the
 * registry's answer, so the test follows new releases).
 */
async function newestConnectForThisNode(): Promise<string> {
  const { stdout } = await npm(root, ["view", "@connectrpc/connect@2", "version", "--json"]);
  const versions = (JSON.parse(stdout) as string[]).filter((v) => semver.prerelease(v) === null);
  for (const v of versions.sort(semver.rcompare)) {
    const engines = (await npm(root, ["view", `@connectrpc/connect@${v}`, "engines", "--json"]))
      .stdout;
    const node =
      engines.trim() === "" ? undefined : (JSON.parse(engines) as { node?: string }).node;
    if (node === undefined || semver.satisfies(process.version, node)) return v;
  }
  throw new Error("no @connectrpc/connect 2.x runs on this Node");
}

describe("installs next to any @connectrpc/connect 2.x from 2.1.2 up", SLOW, () => {
  let lib: Packed;
  let create: Packed;
  before(async () => {
    const packs = tempDir("cp-peer-packs-");
    lib = await pack(root, packs);
    create = await pack(join(root, "create-connect-plugin"), packs);
  });

  for (const which of ["lowest", "newest"] as const) {
    test(`with the ${which} 2.x: one copy of connect, host and plugin call each other over Connect and gRPC`, async () => {
      const version = which === "lowest" ? "2.1.2" : await newestConnectForThisNode();
      const work = tempDir("cp-peer-");
      await scaffold(work, create, "app");
      const project = join(work, "app");
      // A plain `npm install` with that version pinned: npm refuses a peer conflict (ERESOLVE).
      await npm(project, [
        "install",
        "--no-audit",
        "--no-fund",
        lib.file,
        `@connectrpc/connect@${version}`,
      ]);
      const installed = JSON.parse(
        readFileSync(join(project, "node_modules/@connectrpc/connect/package.json"), "utf8"),
      ) as { version: string };
      assert.equal(installed.version, version);
      assert.ok(
        !existsSync(join(project, "node_modules/connect-plugin/node_modules/@connectrpc")),
        "connect-plugin brought its own copy of @connectrpc packages",
      );
      assert.ok(!existsSync(join(project, "node_modules/@connectrpc/connect-node")));
      await npm(project, ["run", "build"]);
      writeFileSync(join(project, "peer-check.mjs"), PEER_CHECK);
      const { stdout } = await run(process.execPath, ["peer-check.mjs"], {
        cwd: project,
        env: cleanEnv(),
      });
      assert.equal(
        stdout,
        "subprocess: Hello, subprocess! 3,2,1\n" +
          "remote connect: Hello, remote connect! 3,2,1\n" +
          "remote grpc: Hello, remote grpc! 3,2,1\n",
      );
    });
  }
});

/** A host that starts the plugin bundle named by its argument and calls it once. */
const CHECK_BUNDLE =
  'import { PluginClient, subprocess, silentLogger } from "connect-plugin";\n' +
  'import { GreeterService, handshake } from "./dist/shared.js";\n' +
  "const client = new PluginClient({ handshake, plugins: { greeter: GreeterService }, logger: silentLogger,\n" +
  "  source: subprocess(process.execPath, [process.argv[2]]) });\n" +
  "await client.start();\n" +
  'console.log((await client.dispense("greeter").greet({ name: "bundle" })).message);\n' +
  "await client.close();\n";

/** A host that calls the scaffold's plugin as a subprocess and as a network service over Connect and gRPC. */
const PEER_CHECK = `
import { spawn } from "node:child_process";
import { PluginClient, remote, subprocess, silentLogger } from "connect-plugin";
import { GreeterService, handshake } from "./dist/shared.js";

async function call(where, source) {
  const client = new PluginClient({ handshake, plugins: { greeter: GreeterService }, source, logger: silentLogger });
  await client.start();
  try {
    const greeter = client.dispense("greeter");
    const { message } = await greeter.greet({ name: where });
    const counted = [];
    for await (const { value } of greeter.countDown({ from: 3 })) counted.push(value);
    console.log(\`\${where}: \${message} \${counted.join(",")}\`);
  } finally {
    await client.close();
  }
}

await call("subprocess", subprocess(process.execPath, ["dist/plugin.js"]));
const child = spawn(process.execPath, ["dist/plugin.js"], {
  env: { ...process.env, CONNECT_PLUGIN_LISTEN: "127.0.0.1:0" },
  stdio: ["ignore", "ignore", "pipe"],
});
const url = await new Promise((resolve, reject) => {
  let output = "";
  child.stderr.on("data", (chunk) => {
    output += chunk;
    const match = /"url":"([^"]+)"/.exec(output);
    if (match) resolve(match[1]);
  });
  child.once("exit", () => reject(new Error("the plugin service exited:\\n" + output)));
});
try {
  await call("remote connect", remote(url, { protocol: "connect" }));
  await call("remote grpc", remote(url, { protocol: "grpc" }));
} finally {
  child.kill("SIGTERM");
}
`;

/** The app's host service: no new .proto in the package, one more in the app. */
const STAMP_PROTO = `syntax = "proto3";

package stamp.v1;

service StampService {
  rpc Stamp(StampRequest) returns (StampResponse);
}

message StampRequest {
  string text = 1;
}

message StampResponse {
  string text = 1;
}
`;

/** A greeter plugin whose greet asks the host that called it to stamp the name. */
const STAMP_PLUGIN = `import { hostClient, implement, serve } from "connect-plugin/plugin";
import { StampService } from "./gen/stamp/v1/stamp_pb.js";
import { GreeterService, handshake } from "./shared.js";

await serve({
  handshake,
  plugins: {
    greeter: implement(GreeterService, {
      async greet(request, ctx) {
        const { text } = await hostClient(ctx, StampService).stamp({ text: \`plugin:\${request.name}\` });
        return { message: \`Hello, \${text}!\` };
      },
      async *countDown() {},
    }),
  },
});
`;

/**
 * The app: registers StampService (stamping with argv[2]) when it creates the
 * client, and calls the plugin as a subprocess and as the network service at argv[3].
 */
const STAMP_HOST = `import { fileURLToPath } from "node:url";
import { PluginClient, implement, remote, silentLogger, subprocess, type PluginSource } from "connect-plugin";
import { StampService } from "./gen/stamp/v1/stamp_pb.js";
import { GreeterService, handshake } from "./shared.js";

const [token = "", url = ""] = process.argv.slice(2);
const plugin = fileURLToPath(new URL("./stamp-plugin.js", import.meta.url));

async function call(where: string, source: PluginSource): Promise<void> {
  const seen: string[] = [];
  const client = new PluginClient({
    handshake,
    plugins: { greeter: GreeterService },
    source,
    logger: silentLogger,
    hostServices: [
      implement(StampService, {
        stamp(request) {
          seen.push(request.text);
          return { text: \`\${request.text}@\${token}\` };
        },
      }),
    ],
  });
  await client.start();
  try {
    const { message } = await client.dispense("greeter").greet({ name: where });
    console.log(\`\${where}: \${message} (host saw \${seen.join(",")})\`);
  } finally {
    await client.close();
  }
}

await call("subprocess", subprocess(process.execPath, [plugin]));
await call("remote", remote(url));
`;
