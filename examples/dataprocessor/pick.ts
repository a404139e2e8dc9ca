/**
 * The host picks a DataProcessor by capability (seed 004's registry lookup):
 * from what the manager knows without starting anything (installed
 * plugins' manifests, built-ins' definitions), the first plugin that
 * provides the DataProcessor service with the capability. The plugin starts
 * on the first call, with `config` validated against its config type.
 */
import type { Client } from "@connectrpc/connect";
import { ManagementError, type PluginEntry, type PluginManager } from "../../src/management.js";
import { DataProcessor, handshake } from "./shared.js";

export interface Picked {
  readonly plugin: string;
  readonly kind: PluginEntry["kind"];
  /** Calls ProcessData with the capability filled in. */
  process(input: Uint8Array): Promise<{ output: Uint8Array; contentType: string }>;
  readonly client: Client<typeof DataProcessor>;
}

export function pickByCapability(
  manager: PluginManager,
  capability: string,
  config?: unknown,
): Picked {
  const candidates = manager
    .list()
    .flatMap((e) =>
      e.provides
        .filter((p) => p.service === DataProcessor.typeName)
        .map((p) => ({ entry: e, provided: p })),
    );
  const found = candidates.find((c) => c.provided.capabilities?.includes(capability));
  if (found === undefined) {
    const offered = candidates.flatMap((c) =>
      (c.provided.capabilities ?? []).map((cap) => `${cap} (${c.entry.name})`),
    );
    throw new ManagementError(
      "not-found",
      `no DataProcessor plugin has the capability "${capability}" (available: ${offered.join(", ") || "none"})`,
    );
  }
  const managed = manager.open(found.entry.name, {
    handshake,
    plugins: { processor: DataProcessor },
    config,
  });
  const client = managed.dispense("processor");
  return {
    plugin: found.entry.name,
    kind: found.entry.kind,
    client,
    process: (input) => client.processData({ capability, input }),
  };
}
