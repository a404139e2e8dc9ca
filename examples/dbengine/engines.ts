/**
 * How a host picks its database engine (seed 001's resolution order): the
 * installed plugin when there is one that verifies and runs, otherwise the
 * in-tree engine, behind the same typed client. The built-in serves when
 *
 * - no plugin of that name is installed,
 * - the plugin fails verification (signature or a file digest), now or at
 *   any later start, or
 * - the plugin crashed more often than its restart budget allows.
 *
 * A call that fails because the plugin crashed while it ran is not silently
 * re-run on the built-in: it fails with Unavailable and the caller decides
 * (Plan and Describe are read-only; Apply is one transaction, so after a
 * crash re-plan before applying again).
 */
import type { Client } from "@connectrpc/connect";
import { ManagementError, type PluginManager } from "../../src/management.js";
import { BuiltinPostgresEngine, builtinEngine } from "./builtin-engine.js";
import { DatabaseEngine, handshake } from "./shared.js";

export type EngineClient = Client<typeof DatabaseEngine>;

/** Who answered the last call, and why the built-in did. */
export type Via =
  | { readonly kind: "plugin"; readonly name: string }
  | { readonly kind: "builtin"; readonly reason: string };

/** Management failures after which the built-in takes over. */
const fallBackOn = new Set([
  "verification-failed",
  "restart-budget-exhausted",
  "not-found",
  "incompatible",
  "unsupported-platform",
]);

export const BUILTIN_ENGINE = "dbengine-builtin";

export class EngineResolver {
  /** Who served the most recent call. */
  lastVia: Via | undefined;
  private readonly builtin: EngineClient;

  constructor(
    private readonly manager: PluginManager,
    private readonly onFallback: (plugin: string, reason: string) => void = () => undefined,
    engine = new BuiltinPostgresEngine(),
  ) {
    manager.registerBuiltin(BUILTIN_ENGINE, {
      definition: () => builtinEngine(engine),
      version: "1.0.0",
      description: "the in-tree PostgreSQL engine (TypeScript, node-postgres)",
    });
    this.builtin = manager
      .open(BUILTIN_ENGINE, { handshake, plugins: { engine: DatabaseEngine } })
      .dispense("engine");
  }

  /** The engine for `plugin`: the plugin, or the built-in with the reason. */
  async engine(plugin: string): Promise<EngineClient> {
    const installed = this.manager.list().some((e) => e.name === plugin && e.kind === "installed");
    if (!installed) return this.fallback(plugin, `plugin "${plugin}" is not installed`);
    try {
      await this.manager.verify(plugin);
    } catch (e) {
      return this.fallback(plugin, e instanceof Error ? e.message : String(e));
    }
    const managed = this.manager.open(plugin, { handshake, plugins: { engine: DatabaseEngine } });
    const viaPlugin = managed.dispense("engine");
    const out: Record<string, unknown> = {};
    for (const method of DatabaseEngine.methods) {
      const name = method.localName as keyof EngineClient;
      out[name] = async (req: never, options?: never) => {
        if (managed.state !== "failed") {
          try {
            const res = await (viaPlugin[name] as (r: never, o?: never) => Promise<unknown>)(
              req,
              options,
            );
            this.lastVia = { kind: "plugin", name: plugin };
            return res;
          } catch (e) {
            if (!(e instanceof ManagementError && fallBackOn.has(e.kind))) throw e;
            this.onFallback(plugin, e.message);
            this.lastVia = { kind: "builtin", reason: e.message };
          }
        } else {
          this.lastVia = {
            kind: "builtin",
            reason: `plugin "${plugin}" has failed (restart budget spent)`,
          };
        }
        return (this.builtin[name] as (r: never, o?: never) => Promise<unknown>)(req, options);
      };
    }
    return out as EngineClient;
  }

  private fallback(plugin: string, reason: string): EngineClient {
    this.onFallback(plugin, reason);
    const builtin = this.builtin;
    const out: Record<string, unknown> = {};
    for (const method of DatabaseEngine.methods) {
      const name = method.localName as keyof EngineClient;
      out[name] = async (req: never, options?: never) => {
        this.lastVia = { kind: "builtin", reason };
        return (builtin[name] as (r: never, o?: never) => Promise<unknown>)(req, options);
      };
    }
    return out as EngineClient;
  }
}
