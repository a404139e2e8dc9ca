/**
 * The scaffold's npm scripts run under any shell npm uses (sh, cmd.exe,
 * PowerShell): no POSIX `VAR=value command` prefixes; `npm run serve` takes
 * its environment from serve.env through Node's own --env-file.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const template = fileURLToPath(new URL("../../create-connect-plugin/template/", import.meta.url));
const scripts = (
  JSON.parse(readFileSync(`${template}package.json`, "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

test("no script sets an environment variable with POSIX shell syntax", () => {
  for (const [name, script] of Object.entries(scripts)) {
    for (const part of script.split(/&&|\|\||;/)) {
      assert.doesNotMatch(part, /^\s*[A-Za-z_][A-Za-z0-9_]*=/, `script "${name}": ${part.trim()}`);
    }
  }
});

test("serve's --env-file gives the plugin CONNECT_PLUGIN_LISTEN, with no shell involved", async () => {
  const serve = scripts.serve ?? "";
  const node = /node (--env-file=\S+) dist\/bundle\/plugin\.cjs/.exec(serve);
  assert.ok(node !== null, `serve runs node with an env file: ${serve}`);
  const { stdout } = await run(
    process.execPath,
    [node[1]!, "-e", "console.log(process.env.CONNECT_PLUGIN_LISTEN)"],
    { cwd: template, env: { PATH: process.env.PATH ?? "" } },
  );
  assert.equal(stdout.trim(), "127.0.0.1:8080");
});
