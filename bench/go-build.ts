/** Builds the Go contenders from go/ with the Go toolchain (module proxy, build cache). */
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const goModule = fileURLToPath(new URL("../../go", import.meta.url));

/**
 * Runs `go ARGS` in `cwd` (default: the repository's go/ module) and returns
 * its stdout; a failure names the command and carries Go's own message.
 */
export async function runGo(
  args: readonly string[],
  cwd = goModule,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)("go", args, {
      cwd,
      env,
      maxBuffer: 16 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why =
      e.code === "ENOENT"
        ? "the Go toolchain (go) is not on PATH; the Go contenders need Go (go/go.mod names the version)"
        : (e.stderr ?? "").trim() || e.message;
    throw new Error(`go ${args.join(" ")} failed in ${cwd}: ${why}`);
  }
}

/**
 * The Go contenders, built into a fresh temporary folder (`dir`, the
 * caller's to remove): go-plugin's Go host and Go plugin
 * (go/bench/goplugin), and the connect-go plugin (go/bench/connectgo).
 */
export async function buildGoContenders(): Promise<{
  host: string;
  plugin: string;
  connectGo: string;
  dir: string;
}> {
  const out = mkdtempSync(join(tmpdir(), "cpb-go-"));
  // With -o DIR, each binary is named after its package's directory.
  await runGo([
    "build",
    "-o",
    out,
    "./bench/goplugin/host",
    "./bench/goplugin/plugin",
    "./bench/connectgo",
  ]);
  return {
    host: join(out, "host"),
    plugin: join(out, "plugin"),
    connectGo: join(out, "connectgo"),
    dir: out,
  };
}

/** Builds one package of go/ (e.g. "./cmd/kv-plugin-connect") to `out/name`; returns its path. */
export async function goBuild(
  out: string,
  pkg: string,
  name: string,
  module = goModule,
): Promise<string> {
  const file = join(out, name);
  await runGo(["build", "-o", file, pkg], module);
  return file;
}

export async function goVersion(): Promise<string> {
  return (await runGo(["env", "GOVERSION"])).trim();
}
