import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startLedgerPlugin } from "../chaos/instance.js";
import { tempDir } from "./helpers.js";

/** A ledger plugin instance started by a test, on a real loopback port. */
export interface LedgerInstance {
  readonly id: string;
  readonly url: string;
  readonly port: number;
  readonly ledger: string;
  child: ChildProcess;
  /** Ids of the writes it executed, in order (read from its ledger file). */
  writes(): string[];
  kill(): void;
  restart(): Promise<void>;
}

const dir = tempDir("cp-cluster-");
const started = new Set<LedgerInstance>();
process.once("exit", () => {
  for (const inst of started) inst.child.kill("SIGKILL");
});

export async function startLedger(
  id: string,
  env: Record<string, string> = {},
): Promise<LedgerInstance> {
  const ledger = join(dir, `${id}-${Math.random().toString(36).slice(2)}.log`);
  const child = await startLedgerPlugin({ port: 0, ledger, id, env });
  const port = Number(new URL(child.url).port);
  const inst: LedgerInstance = {
    id,
    url: child.url,
    port,
    ledger,
    child,
    writes: () =>
      existsSync(ledger)
        ? readFileSync(ledger, "utf8")
            .split("\n")
            .filter((l) => l !== "")
        : [],
    kill: () => {
      inst.child.kill("SIGKILL");
    },
    restart: async () => {
      inst.child = await startLedgerPlugin({ port, ledger, id, env });
    },
  };
  started.add(inst);
  return inst;
}

export async function stopAll(instances: readonly LedgerInstance[]): Promise<void> {
  await Promise.all(
    instances.map(
      (inst) =>
        new Promise<void>((resolve) => {
          if (inst.child.exitCode !== null || inst.child.signalCode !== null) return resolve();
          inst.child.once("exit", () => resolve());
          inst.child.kill("SIGKILL");
        }),
    ),
  );
}

/** Which instance answered a ledger Get. */
export const answeredBy = (value: Uint8Array): string =>
  new TextDecoder().decode(value).split(":")[0] ?? "";
