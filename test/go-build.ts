import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository's Go module (go/), where every Go binary of the tests is built. */
export const goModuleDir = fileURLToPath(new URL("../../go", import.meta.url));

/**
 * Builds Go packages with the toolchain on the machine, once per test file:
 * `const bin = await goBinaries({ kv: "github.com/hashicorp/go-plugin/examples/grpc" })`.
 * Packages come from go/go.mod (go-plugin's own examples straight from the
 * module cache, and our commands under go/cmd). The Go build cache makes a
 * rebuild fast. Call `removeGoBinaries()` in an `after` hook.
 */
export async function goBinaries<K extends string>(
  packages: Record<K, string>,
): Promise<Record<K, string>> {
  dir ??= mkdtempSync(join(tmpdir(), "cp-go-"));
  const out = dir;
  const entries = Object.entries(packages) as [K, string][];
  // One `go build` per package: -o DIR with several main packages names
  // binaries after their directories, which collide ("plugin-go-grpc").
  await Promise.all(
    entries.map(([name, pkg]) =>
      run("go", ["build", "-o", join(out, name), pkg], {
        cwd: goModuleDir,
        maxBuffer: 16 << 20,
      }).catch((error: Error & { stderr?: string }) => {
        throw new Error(`go build ${pkg} failed: ${error.stderr ?? error.message}`);
      }),
    ),
  );
  return Object.fromEntries(entries.map(([name]) => [name, join(out, name)])) as Record<K, string>;
}

let dir: string | undefined;

export function removeGoBinaries(): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}

/** Runs one of go-plugin's Go hosts to completion. */
export function runGoHost(
  binary: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      binary,
      args,
      { cwd, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
