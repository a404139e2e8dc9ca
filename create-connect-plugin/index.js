#!/usr/bin/env node
// @ts-check
/**
 * `npm create connect-plugin@latest [dir]`: writes a connect-plugin host and
 * plugin project (its .proto, buf code generation, tsconfig, scripts) into
 * `dir` (default "my-plugin"), which must not exist or be empty. Nothing is
 * installed or run: the last lines say what to type next.
 */
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, URL } from "node:url";

const usage = "usage: npm create connect-plugin@latest [directory]";

/** @param {string} message */
function fail(message) {
  process.stderr.write(`create-connect-plugin: ${message}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
if (args.includes("-h") || args.includes("--help")) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const unknown = args.filter((a) => a.startsWith("-"));
if (unknown.length > 0 || args.length > 1) fail(`unexpected ${args.join(" ")}\n${usage}`);

const target = resolve(args[0] ?? "my-plugin");
if (existsSync(target) && readdirSync(target).length > 0) {
  fail(`${target} exists and is not empty; choose a new directory`);
}
// npm package names: lower case, no spaces; the directory name is the default.
const name =
  basename(target)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[._-]+/, "") || "my-plugin";

const template = fileURLToPath(new URL("./template", import.meta.url));
cpSync(template, target, { recursive: true });
// npm never packs a file named .gitignore, so the template carries "gitignore".
renameSync(join(target, "gitignore"), join(target, ".gitignore"));
const pkgFile = join(target, "package.json");
const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
pkg.name = name;
writeFileSync(pkgFile, JSON.stringify(pkg, null, 2) + "\n");
const readme = join(target, "README.md");
writeFileSync(readme, readFileSync(readme, "utf8").replace(/^# my-plugin$/m, `# ${name}`));

const where = relative(process.cwd(), target) || ".";
process.stdout.write(
  `Wrote a connect-plugin host and plugin into ${where}. Next:\n\n` +
    (where === "." ? "" : `  cd ${shellWord(where)}\n`) +
    `  npm install\n` +
    `  npm start\n`,
);

/**
 * `dir` as one word that the user can paste into a shell: bare when it is
 * plain, in double quotes (which sh, cmd.exe and PowerShell all take) when
 * it has spaces, in POSIX single quotes when it has characters that double
 * quotes would expand. A backslash is Windows' path separator, literal in
 * its shells (and cmd.exe has no single quotes); in sh it escapes.
 *
 * @param {string} dir
 */
function shellWord(dir) {
  const windows = process.platform === "win32";
  if ((windows ? /^[\w./\\:@+-]+$/ : /^[\w./:@+-]+$/).test(dir)) return dir;
  if (!(windows ? /["$`!]/ : /["$`!\\]/).test(dir)) return `"${dir}"`;
  return `'${dir.replaceAll("'", "'\\''")}'`;
}
