import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  HandshakeResponseSchema,
  PluginController,
  type HandshakeResponse,
  type PluginInfo,
} from "../gen/connectplugin/v1/controller_pb.js";
import { formatVersions } from "../protocol/versions.js";
import { tlsHint, withHint } from "../security/tls-hint.js";

/**
 * What a host asks of every instance of a cluster before the instance takes
 * a call: the protocol versions it speaks and, per version, the plugins it
 * dispenses (plugin name to fully qualified service). The cluster connector
 * fills it from the PluginClient's plugin sets.
 */
export interface InstanceNegotiation {
  readonly versions: readonly number[];
  readonly plugins: ReadonlyMap<number, Readonly<Record<string, string>>>;
  /** Time one instance's Handshake may take. Default 5,000 ms. */
  readonly timeoutMs?: number;
  /**
   * How long an instance that is held out, or did not answer, waits before it
   * is asked again (it may have been upgraded in place). Unanswered
   * handshakes are retried sooner, from 200 ms doubling up to this.
   * Default 5,000 ms.
   */
  readonly retryMs?: number;
}

/**
 * Where an instance stands with the host. `negotiating`: not answered yet
 * (or unreachable; asked again); it takes no calls. `serving`: handshaken,
 * takes calls for the services it announced. `held-out`: it answered, but
 * cannot serve this host (no shared protocol version, or a plugin the host
 * needs is missing at the version it chose); it takes no calls.
 */
export type Admission =
  | { readonly state: "negotiating"; readonly reason: string }
  | {
      readonly state: "serving";
      readonly version: number;
      readonly supportedVersions: readonly number[];
      readonly plugins: readonly PluginInfo[];
      /** The host's services this instance serves, at its version. */
      readonly services: ReadonlySet<string>;
    }
  | {
      readonly state: "held-out";
      readonly reason: string;
      readonly supportedVersions: readonly number[];
      /** When it agreed a version but lacks plugins: that version and what it offers there. */
      readonly agreed?: { readonly version: number; readonly plugins: readonly PluginInfo[] };
    };

export const NEGOTIATING: Admission = { state: "negotiating", reason: "not handshaken yet" };

/** Runs the Handshake with one instance and judges the answer. Never throws. */
export async function negotiateInstance(
  transport: Transport,
  negotiation: InstanceNegotiation,
  signal: AbortSignal,
  /** The instance's URL, for the hint of a failed TLS handshake. */
  url: URL,
): Promise<Admission> {
  const requested = new Set<string>();
  for (const set of negotiation.plugins.values())
    for (const n of Object.keys(set)) requested.add(n);
  try {
    const res = await createClient(PluginController, transport).handshake(
      { protocolVersions: [...negotiation.versions], requestedPlugins: [...requested] },
      { timeoutMs: negotiation.timeoutMs ?? 5_000, signal },
    );
    return judgeHandshake(res, negotiation);
  } catch (error) {
    const ce = ConnectError.from(error);
    if (ce.code === Code.Unimplemented || ce.code === Code.NotFound) {
      return {
        state: "held-out",
        reason: `does not speak the connect-plugin protocol (Handshake: ${ce.rawMessage})`,
        supportedVersions: [],
      };
    }
    return {
      state: "negotiating",
      reason: `handshake failed: ${withHint(ce.message.trimEnd(), tlsHint(error, url, "cluster"))}`,
    };
  }
}

/**
 * Judges an instance's Handshake answer: serving at its version when that is
 * one of the host's and it provides every plugin the host dispenses there
 * (an empty service name in the answer matches, as PluginClient allows);
 * held out otherwise, with a reason that names both sides.
 */
export function judgeHandshake(
  res: HandshakeResponse,
  negotiation: InstanceNegotiation,
): Admission {
  const version = res.protocolVersion;
  const supportedVersions = res.supportedVersions.length > 0 ? res.supportedVersions : [version];
  const wanted = negotiation.plugins.get(version);
  if (version === 0 || wanted === undefined) {
    return {
      state: "held-out",
      reason:
        `protocol version mismatch: the instance speaks ${formatVersions(supportedVersions)}, ` +
        `this host speaks ${formatVersions(negotiation.versions)}`,
      supportedVersions,
    };
  }
  const services = new Set<string>();
  const missing: string[] = [];
  for (const [name, service] of Object.entries(wanted)) {
    const info = res.availablePlugins.find((p) => p.name === name);
    if (info === undefined) missing.push(`"${name}" is not provided`);
    else if (info.service !== "" && info.service !== service) {
      missing.push(`"${name}" is served as ${info.service}, the host expects ${service}`);
    } else services.add(service);
  }
  if (missing.length > 0) {
    return {
      state: "held-out",
      reason: `at protocol version ${version}: ${missing.join("; ")}`,
      supportedVersions,
      agreed: { version, plugins: res.availablePlugins },
    };
  }
  return { state: "serving", version, supportedVersions, plugins: res.availablePlugins, services };
}

/**
 * The cluster's own answer to a PluginClient's Handshake, from the instances
 * that were admitted: the highest version one of them serves, with the
 * plugins announced at that version. With none serving but some held out:
 * as the one that agreed the highest version answered (the client then
 * names the plugin it lacks), or, when none agreed a version, version 0 and
 * every version they speak (the client reports a version mismatch);
 * undefined when no instance answered.
 */
export function clusterHandshake(admissions: readonly Admission[]): HandshakeResponse | undefined {
  const serving = admissions.filter((a) => a.state === "serving");
  const supported = new Set<number>();
  for (const a of admissions)
    if (a.state !== "negotiating") for (const v of a.supportedVersions) supported.add(v);
  if (serving.length === 0) {
    const held = admissions.filter((a) => a.state === "held-out");
    if (held.length === 0) return undefined;
    // One agreed a version but lacks plugins: answer as it did, so that the
    // client names the missing plugin as it does for any other source.
    const agreed = held.flatMap((a) => (a.agreed !== undefined ? [a.agreed] : []));
    const best = agreed.sort((a, b) => b.version - a.version)[0];
    return create(HandshakeResponseSchema, {
      protocolVersion: best?.version ?? 0,
      availablePlugins: [...(best?.plugins ?? [])],
      supportedVersions: [...supported],
    });
  }
  const version = Math.max(...serving.map((a) => a.version));
  const plugins = new Map<string, PluginInfo>();
  for (const a of serving) {
    if (a.version !== version) continue;
    for (const p of a.plugins) if (!plugins.has(p.name)) plugins.set(p.name, p);
  }
  return create(HandshakeResponseSchema, {
    protocolVersion: version,
    availablePlugins: [...plugins.values()],
    supportedVersions: [...supported],
  });
}

/** The services a host dispenses at any version: calls to them go only to instances that announced them. */
export function negotiatedServices(negotiation: InstanceNegotiation): ReadonlySet<string> {
  const all = new Set<string>();
  for (const set of negotiation.plugins.values()) for (const s of Object.values(set)) all.add(s);
  return all;
}

/** Describes an admission for status lines and "no instance" messages. */
export function describeAdmission(a: Admission): string {
  switch (a.state) {
    case "negotiating":
      return `negotiating (${a.reason})`;
    case "held-out":
      return `held out (${a.reason})`;
    case "serving":
      return `serving protocol version ${a.version}`;
  }
}
