/** Builds the go-plugin contenders from go/ with the Go toolchain (module proxy, build cache). */
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const goModule = fileURLToPath(new URL("../../go", import.meta.url));

export async function buildGoContenders(): Promise<{ host: string; plugin: string; dir: string }> {
  const out = mkdtempSync(join(tmpdir(), "cpb-go-"));
  await promisify(execFile)(
    "go",
    ["build", "-o", out, "./bench/goplugin/host", "./bench/goplugin/plugin"],
    { cwd: goModule },
  );
  return { host: join(out, "host"), plugin: join(out, "plugin"), dir: out };
}

/** Builds one package of go/ (e.g. "./cmd/kv-plugin-connect") to `out/name`; returns its path. */
export async function goBuild(out: string, pkg: string, name: string): Promise<string> {
  const file = join(out, name);
  await promisify(execFile)("go", ["build", "-o", file, pkg], { cwd: goModule });
  return file;
}

export async function goVersion(): Promise<string> {
  const { stdout } = await promisify(execFile)("go", ["env", "GOVERSION"]);
  return stdout.trim();
}
