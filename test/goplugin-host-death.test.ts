/**
 * A TypeScript plugin launched by a go-plugin host through `sh -c` (as
 * go-plugin's example hosts do) exits when that host is killed with
 * SIGKILL. Its parent is the shell, which outlives the host, and its stdin
 * is the host's own, so neither tells it; the end of the host's connection
 * does. The host is go-plugin's examples/grpc host (go/cmd/kv-host-mtls,
 * built from the module proxy) with a `hold` verb that waits to be killed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { goBinaries, removeGoBinaries } from "./go-build.js";
import { tempDir, waitFor } from "./helpers.js";

let host: string;
before(
  async () => {
    ({ host } = await goBinaries({
      host: "github.com/connect-plugin/connect-plugin/go/cmd/kv-host-mtls",
    }));
  },
  { timeout: 600_000 },
);
after(removeGoBinaries);

const tsKvPlugin = fileURLToPath(new URL("../examples/goplugin/kv-plugin.js", import.meta.url));

/** Alive and not a zombie. */
function running(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
    .trim()
    .split(/\s+/)
    .filter((s) => s !== "")
    .map(Number);
}

test("a plugin under sh -c exits when its go-plugin host is killed with SIGKILL", async () => {
  // The command after the plugin keeps sh waiting as its parent (a lone
  // command could be exec'd by the shell instead).
  const command = `"${process.execPath}" "${tsKvPlugin}"; echo "sh: plugin ended" >&2`;
  const child = spawn(host, ["hold", "k", "v"], {
    cwd: tempDir("cp-gp-death-"),
    env: { ...process.env, KV_PLUGIN: command, KV_PROTO: "grpc" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let plugin: number | undefined;
  try {
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = String((await lines.next()).value);
    const match = /^ready (\d+)$/.exec(first);
    assert.ok(match !== null, `the host is ready: ${first}`);
    const shell = Number(match[1]);
    const kids = childrenOf(shell);
    assert.equal(kids.length, 1, "sh runs one child, the plugin");
    plugin = kids[0]!;
    assert.match(readFileSync(`/proc/${plugin}/cmdline`, "utf8"), /kv-plugin\.js/);
    assert.ok(running(plugin), "the plugin runs while its host does");

    child.kill("SIGKILL");
    await waitFor("the plugin to exit after its host died", () => !running(plugin!), 15_000);
    await waitFor("the shell to end with it", () => !running(shell), 5_000);
  } finally {
    child.kill("SIGKILL");
    if (plugin !== undefined && running(plugin)) process.kill(plugin, "SIGKILL");
  }
});
