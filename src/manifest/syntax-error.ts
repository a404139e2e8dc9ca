/**
 * One line saying where a JSON or YAML text stops parsing, for an error
 * message: node 20's JSON.parse says only "at position 15", and the yaml
 * package's message carries a multi-line excerpt after the first line.
 */
export function syntaxErrorText(text: string, e: unknown): string {
  const message = (e as Error).message.split("\n")[0]?.replace(/:$/, "") ?? String(e);
  const at = /at position (\d+)/.exec(message);
  if (at === null) return message;
  const before = text.slice(0, Number(at[1]));
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return message.replace(at[0], `at line ${line}, column ${column}`);
}
