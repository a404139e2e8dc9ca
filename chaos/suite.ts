import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { PluginClient, cluster, silentLogger, staticEndpoints } from "../src/index.js";
import type { ClusterEvent } from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { FaultProxy, type Fault } from "./proxy.js";
import { startLedgerPlugin } from "./instance.js";
import { heal, partition, type PartitionKind, type PartitionLink, type Topology } from "./netns.js";
import { seededRandom } from "./seeded-random.js";

/** How a chaos run is shaped. The defaults are the full run of `npm run chaos`. */
export interface ChaosOptions {
  readonly instances?: number;
  readonly durationMs?: number;
  /** Workers making calls back to back. */
  readonly concurrency?: number;
  /** How often a free fault slot is looked for (a fault runs its whole duration). */
  readonly faultIntervalMs?: number;
  /** Time between two connection resets. */
  readonly resetIntervalMs?: number;
  /** Time between two SIGKILLs of an instance. */
  readonly killIntervalMs?: number;
  /** Deadline of every call. */
  readonly callTimeoutMs?: number;
  /**
   * Seeds the harness's choices (fault kinds, targets, durations, workload
   * mix), so that a run's fault schedule can be replayed with `--seed`.
   * Timing still differs between runs, and so does the library's own jitter.
   */
  readonly seed?: number;
  /**
   * Namespaces for real partitions (see netns.ts): the caller runs this
   * process inside `topology.hostNs`. Without it, no partitions are made.
   */
  readonly topology?: Topology;
  /** Why there is no topology, for the report. */
  readonly partitionsUnavailable?: string;
  readonly log?: (line: string) => void;
}

/** The fault kinds, in the report's order. */
export const FAULT_KINDS = ["latency", "reset", "blackhole", "slow", "partition", "kill"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** No kind may be more than this share of all faults (the suite keeps to it as it chooses). */
const MAX_KIND_SHARE = 0.38;

export interface ChaosTarget {
  readonly name: string;
  readonly value: number;
  readonly target: string;
  readonly pass: boolean;
}

export interface ChaosReport {
  readonly options: Required<
    Omit<ChaosOptions, "log" | "topology" | "partitionsUnavailable" | "seed">
  >;
  readonly seed: number;
  /** Why partitions were not made, when they were not. */
  readonly partitionsUnavailable: string | undefined;
  readonly elapsedMs: number;
  readonly faults: Record<FaultKind, number> & { total: number };
  /** Partitions by how they were made. */
  readonly partitionKinds: Record<PartitionKind, number>;
  readonly calls: {
    total: number;
    reads: number;
    writes: number;
    succeeded: number;
    failedClear: number;
    failedUnclear: number;
    byCode: Record<string, number>;
    /** Failed calls whose error names an instance that was dead and already ejected. */
    failedOnEjectedDead: number;
  };
  /** Seconds each kind of fault impaired an instance, summed. */
  readonly faultSeconds: Record<"latency" | "blackhole" | "slow" | "partition" | "dead", number>;
  /** Kills after which the proxy refused connections (ECONNREFUSED) rather than resetting them. */
  readonly refusedKills: number;
  readonly hungCalls: number;
  readonly duplicateWrites: number;
  readonly lostAckedWrites: number;
  readonly hostCrashes: number;
  readonly ejections: number;
  /** From SIGKILL to the first successful call started after the cluster ejected the instance. */
  readonly failoverMaxMs: number;
  readonly failoverP50Ms: number;
  /** From SIGKILL to the cluster ejecting the instance. */
  readonly detectionMaxMs: number;
  /** Kills the cluster did not eject before the instance was restarted. */
  readonly undetectedKills: number;
  readonly sampleErrors: string[];
  readonly hostErrors: string[];
  /**
   * Failures of the harness itself (a proxy, a restart, a namespace command,
   * the suite's own bookkeeping). They say nothing about the library: a run
   * with any is reported as a harness error, never as a library failure.
   */
  readonly harnessErrors: string[];
  /**
   * Instances the host called over HTTP because they did not answer the
   * framed protocol (cluster transport "auto"): 0 when every call took the
   * framed path, as it should between a connect-plugin host and plugin.
   */
  readonly httpFallbacks: string[];
  readonly targets: ChaosTarget[];
  readonly pass: boolean;
  /** "pass", "library-failure" (a target missed) or "harness-error" (the run proves nothing). */
  readonly verdict: "pass" | "library-failure" | "harness-error";
}

// Still exported from here for the files that import it from the harness.
export { seededRandom };

const HUNG_MARGIN_MS = 250;

interface Instance {
  readonly id: string;
  readonly port: number;
  readonly ledger: string;
  readonly proxy: FaultProxy;
  /** Its namespace link, when partitions are made. */
  readonly link: PartitionLink | undefined;
  child: ChildProcess | undefined;
  /** Until when a network fault impairs it (faults are never cut short). */
  impairedUntil: number;
  dead: boolean;
  /** When it was last SIGKILLed, until the cluster ejects it. */
  killedAt: number;
  /** When the cluster ejected it after its last kill (0 while not ejected). */
  ejectedAt: number;
}

/**
 * Runs N ledger-plugin instances, each behind a fault-injecting proxy, and a
 * host that reaches them through one cluster source; drives a mixed workload
 * of idempotent reads and non-idempotent writes (each with a unique id)
 * while it injects faults and kills instances; then audits the ledgers.
 *
 * At most half the instances (rounded down, at least one) are impaired by
 * network faults at once, and one more may be dead, so that the pool as a
 * whole stays able to serve: the suite checks that the host keeps its
 * promises under failure, not that it works without any instance. A network
 * fault (latency, slow link, proxy blackhole, or a real partition in the
 * kernel when namespaces are given) is started only on an instance that is
 * not impaired, and runs for its whole duration (a fifth of blackholes and
 * partitions outlast the call deadline, so calls caught in one reach it); a
 * reset counts only when it killed at least one connection. No kind may pass
 * 38% of the faults so far: a kind that has had its share waits. A kill
 * (SIGKILL, restart 0.9-1.5 s later) hits an instance the cluster has in
 * service, so that each kill has an ejection to detect. Half of
 * the kills also make the proxy refuse connections until the restart, so
 * writes retried after ECONNREFUSED are audited too, and 5% of writes are
 * answered with an Unavailable error after the plugin recorded them (with
 * text that looks like a transport error), so the host must not resend them.
 */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const opts = {
    instances: options.instances ?? 5,
    durationMs: options.durationMs ?? 110_000,
    concurrency: options.concurrency ?? 16,
    faultIntervalMs: options.faultIntervalMs ?? 20,
    resetIntervalMs: options.resetIntervalMs ?? 200,
    killIntervalMs: options.killIntervalMs ?? 6_000,
    callTimeoutMs: options.callTimeoutMs ?? 1_000,
  };
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const topology = options.topology;
  const log = options.log ?? (() => {});
  const harnessErrors: string[] = [];
  const httpFallbacks: string[] = [];
  const harnessError = (what: string, error: unknown): void => {
    const text = `${what}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    harnessErrors.push(text);
    log(`HARNESS ERROR ${text.split("\n")[0]}`);
  };
  const dir = mkdtempSync(join(tmpdir(), "connect-plugin-chaos-"));
  const hostErrors: string[] = [];
  const onCrash = (error: unknown): void => {
    hostErrors.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
  };
  process.on("uncaughtException", onCrash);
  process.on("unhandledRejection", onCrash);

  const instances: Instance[] = [];
  const faults: Record<FaultKind, number> = {
    latency: 0,
    reset: 0,
    blackhole: 0,
    slow: 0,
    partition: 0,
    kill: 0,
  };
  const partitionKinds: Record<PartitionKind, number> = { "link-down": 0, "route-removed": 0 };
  const totalFaults = (): number => Object.values(faults).reduce((a, b) => a + b, 0);
  /** Whether one more fault of this kind keeps it within its share (after a start-up allowance). */
  const withinShare = (kind: FaultKind): boolean => {
    const total = totalFaults();
    return total < 50 || (faults[kind] + 1) / (total + 1) <= MAX_KIND_SHARE;
  };
  const calls = {
    total: 0,
    reads: 0,
    writes: 0,
    succeeded: 0,
    failedClear: 0,
    failedUnclear: 0,
    failedOnEjectedDead: 0,
  };
  const faultMs = { latency: 0, blackhole: 0, slow: 0, partition: 0, dead: 0 };
  let refusedKills = 0;
  let undetectedKills = 0;
  const byCode: Record<string, number> = {};
  const sampleErrors = new Set<string>();
  const acked: string[] = [];
  let hung = 0;
  const ejections: number[] = [];
  const failovers: number[] = [];
  const detection: number[] = [];
  /** Kill times of ejected instances waiting for a successful call started after the ejection. */
  const pendingFailover: { killedAt: number; ejectedAt: number }[] = [];
  let client: PluginClient<{ kv: typeof KV }> | undefined;
  const timers: NodeJS.Timeout[] = [];
  /** Aborted when the run ends: restarts under way stop, and kill what they started. */
  const stop = new AbortController();
  /** Restarts of killed instances under way (the run waits for them before it audits). */
  const restarts = new Set<Promise<void>>();
  const started = Date.now();
  try {
    for (let i = 0; i < opts.instances; i++) {
      const link = topology?.links[i];
      // In its own namespace every port is free; on loopback, find one.
      const port = link !== undefined ? 7000 : await freePort();
      const proxy = new FaultProxy({ host: link?.instanceAddress ?? "127.0.0.1", port });
      await proxy.start();
      const inst: Instance = {
        id: `i${i}`,
        port,
        ledger: join(dir, `ledger-${i}.log`),
        proxy,
        link,
        child: undefined,
        impairedUntil: 0,
        dead: false,
        killedAt: 0,
        ejectedAt: 0,
      };
      await startInstance(inst);
      instances.push(inst);
    }
    const ids = new Map(instances.map((inst) => [`127.0.0.1:${inst.proxy.port}`, inst.id]));
    client = new PluginClient({
      handshake,
      plugins: { kv: KV },
      logger: silentLogger,
      source: cluster({
        discovery: staticEndpoints(instances.map((inst) => `http://127.0.0.1:${inst.proxy.port}`)),
        balancer: "least-outstanding",
        health: { intervalMs: 150, timeoutMs: 250, failureThreshold: 2, successThreshold: 1 },
        circuitBreaker: { failureThreshold: 5, openMs: 400 },
        retry: {
          maxAttempts: 3,
          baseDelayMs: 10,
          maxDelayMs: 100,
          budget: { maxTokens: 50, tokenRatio: 0.5 },
        },
        attemptTimeoutMs: 450,
        defaultTimeoutMs: opts.callTimeoutMs,
        onEvent: (event: ClusterEvent) => {
          if (event.type === "http-fallback") httpFallbacks.push(`${event.id}: ${event.reason}`);
          if (event.type === "unhealthy" || (event.type === "circuit" && event.state === "open")) {
            const now = Date.now();
            ejections.push(now);
            const inst = instances.find((i) => ids.get(event.id) === i.id);
            // The failover figure is about killed instances: from the
            // SIGKILL, through the ejection, to the first successful call
            // started after the ejection.
            if (inst !== undefined && inst.dead && inst.killedAt > 0 && inst.ejectedAt === 0) {
              detection.push(now - inst.killedAt);
              inst.ejectedAt = now;
              pendingFailover.push({ killedAt: inst.killedAt, ejectedAt: now });
              log(
                `ejected killed ${inst.id} (${event.type}) ${now - inst.killedAt} ms after SIGKILL`,
              );
            }
          }
        },
      }),
    });
    await client.start();
    const kv = client.dispense("kv");
    const end = started + opts.durationMs;

    // Network faults: N-2 slots; a fault starts only on an instance that is
    // neither dead nor impaired, and is never cut short.
    const networkSlots = Math.max(1, Math.floor((opts.instances - 1) / 2));
    const injectFault = (): void => {
      const now = Date.now();
      const impaired = instances.filter((i) => i.impairedUntil > now).length;
      if (impaired >= networkSlots) return;
      const free = instances.filter((i) => !i.dead && i.impairedUntil <= now);
      const target = free[Math.floor(random() * free.length)];
      if (target === undefined) return;
      // Weights, then the share cap: a kind that has had its share waits.
      const weights: Array<[Exclude<FaultKind, "reset" | "kill">, number]> = [
        ["latency", 0.3],
        ["slow", 0.25],
        ["blackhole", 0.2],
        ["partition", target.link !== undefined ? 0.25 : 0],
      ];
      const open = weights.filter(([k, w]) => w > 0 && withinShare(k));
      const sum = open.reduce((a, [, w]) => a + w, 0);
      let roll = random() * sum;
      const kind = open.find(([, w]) => (roll -= w) < 0)?.[0] ?? open.at(-1)?.[0];
      if (kind === undefined) return;
      // A fifth of the blackholes and partitions outlast the call deadline,
      // so calls caught in them hit DeadlineExceeded; the others heal in
      // time for the held bytes to be delivered (or retransmitted).
      const long = random() < 0.2;
      let ms: number;
      let fault: Fault | undefined;
      if (kind === "latency") {
        fault = { kind: "latency", ms: 20 + Math.floor(random() * 300) };
        ms = 50 + random() * 100;
      } else if (kind === "slow") {
        fault = { kind: "slow", bytesPerSecond: 2_000 + Math.floor(random() * 20_000) };
        ms = 50 + random() * 100;
      } else {
        if (kind === "blackhole") fault = { kind: "blackhole" };
        ms = long ? opts.callTimeoutMs + 50 + random() * 250 : 100 + random() * 250;
      }
      ms = Math.min(ms, Math.max(0, end - now));
      if (ms < 50) return;
      faults[kind]++;
      faultMs[kind] += ms;
      // A short gap after the fault before the slot is used again.
      target.impairedUntil = now + ms + 20;
      if (fault !== undefined) {
        const f = fault;
        target.proxy.setFault(f);
        timers.push(setTimeout(() => target.proxy.setFault({ kind: "none" }), ms));
        return;
      }
      const link = target.link as PartitionLink;
      const how: PartitionKind = random() < 0.5 ? "link-down" : "route-removed";
      partitionKinds[how]++;
      // The partition holds the slot until it has healed, however long that takes.
      target.impairedUntil = Number.POSITIVE_INFINITY;
      partition(link, how)
        .then(
          () => new Promise<void>((resolve) => timers.push(setTimeout(resolve, ms))),
          (error: unknown) => harnessError(`partition ${target.id} (${how})`, error),
        )
        .then(() => heal(link, how))
        .catch((error: unknown) => harnessError(`heal ${target.id} (${how})`, error))
        .finally(() => (target.impairedUntil = Date.now() + 20));
    };
    const faultTimer = setInterval(() => {
      if (Date.now() < end) injectFault();
    }, opts.faultIntervalMs);
    // Resets: instant; counted only when they killed a connection.
    const resetTimer = setInterval(() => {
      if (Date.now() >= end) return;
      if (!withinShare("reset")) return;
      const alive = instances.filter((i) => !i.dead);
      const target = alive[Math.floor(random() * alive.length)];
      if (target !== undefined && target.proxy.reset() > 0) faults.reset++;
    }, opts.resetIntervalMs);

    // Kills: SIGKILL an unimpaired instance in service every killIntervalMs, restart it
    // 0.9-1.5 s later. Half the time the proxy refuses connections meanwhile.
    let nextKillAt = started + opts.killIntervalMs;
    const killTimer = setInterval(() => {
      const now = Date.now();
      if (now < nextKillAt || now >= end - 2_000) return;
      if (instances.some((i) => i.dead)) return;
      // Only an instance the cluster has in service: one it already ejected
      // (still unhealthy or circuit-open after an earlier fault) would give
      // no new ejection to detect, and its kill would test nothing.
      const inService = new Set(
        (client?.status().endpoints ?? [])
          .filter((e) => e.healthy && e.circuit === "closed" && e.admission === "serving")
          .map((e) => ids.get(e.id)),
      );
      const candidates = instances.filter((i) => i.impairedUntil <= now && inService.has(i.id));
      const victim = candidates[Math.floor(random() * candidates.length)];
      if (victim === undefined) return;
      nextKillAt = now + opts.killIntervalMs;
      victim.dead = true;
      victim.killedAt = now;
      victim.ejectedAt = 0;
      victim.child?.kill("SIGKILL");
      faults.kill++;
      const refuse = random() < 0.5;
      if (refuse) refusedKills++;
      log(`SIGKILL ${victim.id}${refuse ? " (proxy refuses connections)" : ""}`);
      const refusing = refuse ? victim.proxy.refuse() : Promise.resolve();
      // Down for longer than the health monitor needs, at worst, to eject
      // it (two failed checks: 2 x (150 ms interval + 250 ms timeout)), so
      // that every kill can be detected before the restart.
      const downMs = 900 + random() * 600;
      timers.push(
        setTimeout(() => {
          const restart = refusing
            .then(() => restartInstance(victim, harnessError, stop.signal))
            .then(() => victim.proxy.listen())
            .then(() => {
              if (victim.ejectedAt === 0) {
                undetectedKills++;
                log(`${victim.id} was restarted before the cluster ejected it`);
              }
              faultMs.dead += Date.now() - victim.killedAt;
              victim.killedAt = 0;
              victim.dead = false;
              log(`restarted ${victim.id}`);
            })
            .catch((error: unknown) => {
              if (!stop.signal.aborted) harnessError(`restarting ${victim.id}`, error);
            });
          restarts.add(restart);
          void restart.finally(() => restarts.delete(restart));
        }, downMs),
      );
    }, 50);

    // The workload.
    const worker = async (): Promise<void> => {
      while (Date.now() < end) {
        try {
          await oneCall();
        } catch (error) {
          // The library's failures are the call's outcome, handled in
          // oneCall(); what is thrown here is the harness's own.
          harnessError("workload bookkeeping", error);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const oneCall = async (): Promise<void> => {
      {
        const write = random() < 0.4;
        // 5% of writes fail in the plugin after it recorded them, with a
        // message that looks like a transport fact: never to be resent.
        const failing = write && random() < 0.05;
        const id = failing
          ? `fail:Unavailable:downstream: Stream closed with error code NGHTTP2_REFUSED_STREAM ${randomUUID()}`
          : randomUUID();
        const t0 = Date.now();
        calls.total++;
        if (write) calls.writes++;
        else calls.reads++;
        const call = write
          ? kv.put({ key: id, value: new Uint8Array([1]) }, { timeoutMs: opts.callTimeoutMs })
          : kv.get({ key: id }, { timeoutMs: opts.callTimeoutMs });
        // A watchdog, so that a call that never settles is counted, not waited for.
        let watchdog: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          call.then(
            () => "ok" as const,
            (e: unknown) => e,
          ),
          new Promise<"hung">((resolve) => {
            watchdog = setTimeout(() => resolve("hung"), opts.callTimeoutMs + HUNG_MARGIN_MS);
          }),
        ]);
        clearTimeout(watchdog);
        const took = Date.now() - t0;
        if (outcome === "hung" || took > opts.callTimeoutMs + HUNG_MARGIN_MS) {
          hung++;
          log(`hung call: ${write ? "put" : "get"} took ${took} ms`);
          if (outcome === "hung") return;
        }
        if (outcome === "ok") {
          calls.succeeded++;
          if (write) acked.push(id);
          const now = Date.now();
          while (pendingFailover.length > 0 && (pendingFailover[0]?.ejectedAt ?? now) <= t0) {
            failovers.push(now - (pendingFailover.shift()?.killedAt ?? now));
          }
          return;
        }
        const ce = ConnectError.from(outcome);
        const name = Code[ce.code] ?? String(ce.code);
        byCode[name] = (byCode[name] ?? 0) + 1;
        if (isClear(ce)) calls.failedClear++;
        else calls.failedUnclear++;
        if (
          instances.some(
            (i) =>
              i.dead && i.ejectedAt > 0 && ce.rawMessage.includes(`127.0.0.1:${i.proxy.port},`),
          )
        )
          calls.failedOnEjectedDead++;
        if (sampleErrors.size < 12) sampleErrors.add(`${name}: ${ce.rawMessage}`);
        // A caller backs off after a failure rather than spinning.
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const progress = setInterval(() => {
      log(
        `t=${Math.round((Date.now() - started) / 1000)}s calls=${calls.total} ok=${calls.succeeded} ` +
          `faults=${totalFaults()} ${JSON.stringify(faults)} hung=${hung}`,
      );
    }, 10_000);
    await Promise.all(Array.from({ length: opts.concurrency }, () => worker()));
    clearInterval(faultTimer);
    clearInterval(resetTimer);
    clearInterval(killTimer);
    clearInterval(progress);
  } catch (error) {
    harnessError("the run stopped", error);
  } finally {
    for (const t of timers) clearTimeout(t);
    // A restart still under way would otherwise start a plugin after the
    // kills below, which keeps this process alive (and, its ledger folder
    // removed, is respawned again and again).
    stop.abort();
    await Promise.allSettled([...restarts]);
    await client?.close().catch((error: unknown) => onCrash(error));
    for (const inst of instances) {
      const child = inst.child;
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
      await inst.proxy.close().catch((error: unknown) => harnessError("closing a proxy", error));
    }
    process.off("uncaughtException", onCrash);
    process.off("unhandledRejection", onCrash);
  }
  const elapsedMs = Date.now() - started;

  // Audit the ledgers.
  const seen = new Map<string, number>();
  for (const inst of instances) {
    if (!existsSync(inst.ledger)) continue;
    for (const line of readFileSync(inst.ledger, "utf8").split("\n")) {
      // A failing write is recorded as "put:KEY" (then fails), a normal one as its id.
      if (line !== "")
        seen.set(line.replace(/^put:/, ""), (seen.get(line.replace(/^put:/, "")) ?? 0) + 1);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  const duplicateWrites = [...seen.values()].filter((n) => n > 1).length;
  const lostAckedWrites = acked.filter((id) => !seen.has(id)).length;
  const faultTotal = totalFaults();
  const largestShare = Math.max(...FAULT_KINDS.map((k) => faults[k])) / Math.max(1, faultTotal);
  const sorted = [...failovers].sort((a, b) => a - b);
  const failoverMaxMs = sorted.at(-1) ?? 0;
  const failoverP50Ms = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const minFaults = Math.round((1_000 * opts.durationMs) / 110_000);
  const targets: ChaosTarget[] = [
    {
      name: "injected faults",
      value: faultTotal,
      target: `>= ${minFaults}`,
      pass: faultTotal >= minFaults,
    },
    {
      name: "largest share of one fault kind (%)",
      value: Math.round(largestShare * 1000) / 10,
      target: "<= 40",
      pass: largestShare <= 0.4,
    },
    {
      name: "run time (s)",
      value: Math.round(elapsedMs / 100) / 10,
      target: "<= 120",
      pass: elapsedMs <= 120_000,
    },
    { name: "hung calls (deadline + 250 ms)", value: hung, target: "0", pass: hung === 0 },
    {
      name: "non-idempotent writes executed more than once",
      value: duplicateWrites,
      target: "0",
      pass: duplicateWrites === 0,
    },
    {
      name: "acknowledged writes missing from the ledgers",
      value: lostAckedWrites,
      target: "0",
      pass: lostAckedWrites === 0,
    },
    { name: "host crashes", value: hostErrors.length, target: "0", pass: hostErrors.length === 0 },
    {
      name: "calls failed without a clear error",
      value: calls.failedUnclear,
      target: "0",
      pass: calls.failedUnclear === 0,
    },
    {
      name: "kills followed by an ejection and a successful call (failovers measured)",
      value: failovers.length,
      target: `= ${faults.kill} kills`,
      pass: failovers.length === faults.kill && undetectedKills === 0,
    },
    {
      name: "failover: SIGKILL -> ejection -> first successful call, max (ms)",
      value: failoverMaxMs,
      target: "<= 1000",
      pass: failoverMaxMs <= 1_000 && faults.kill > 0,
    },
  ];
  const pass = targets.every((t) => t.pass);
  return {
    options: opts,
    seed,
    partitionsUnavailable:
      topology === undefined
        ? (options.partitionsUnavailable ?? "no network namespaces were given")
        : undefined,
    elapsedMs,
    faults: { ...faults, total: faultTotal },
    partitionKinds,
    faultSeconds: {
      latency: Math.round(faultMs.latency / 100) / 10,
      blackhole: Math.round(faultMs.blackhole / 100) / 10,
      slow: Math.round(faultMs.slow / 100) / 10,
      partition: Math.round(faultMs.partition / 100) / 10,
      dead: Math.round(faultMs.dead / 100) / 10,
    },
    refusedKills,
    calls: { ...calls, byCode },
    hungCalls: hung,
    duplicateWrites,
    lostAckedWrites,
    hostCrashes: hostErrors.length,
    ejections: ejections.length,
    failoverMaxMs,
    failoverP50Ms,
    detectionMaxMs: Math.max(0, ...detection),
    undetectedKills,
    sampleErrors: [...sampleErrors, ...hostErrors.slice(0, 3)],
    hostErrors,
    harnessErrors,
    httpFallbacks,
    targets,
    pass: pass && harnessErrors.length === 0,
    verdict: harnessErrors.length > 0 ? "harness-error" : pass ? "pass" : "library-failure",
  };
}

/**
 * A clear failure: a code the host uses for failures it observed, with the
 * instance and attempt it happened on, or the message that no instance was
 * left. Anything else (Internal, Canceled, Unknown, a bare message) is not.
 */
function isClear(ce: ConnectError): boolean {
  const codes = [Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted];
  if (!codes.includes(ce.code)) return false;
  return (
    /\(instance [^,]+, attempt \d+/.test(ce.rawMessage) ||
    /^no instance of .+ can take /.test(ce.rawMessage) ||
    /deadline of \d+ ms exceeded before attempt \d+$/.test(ce.rawMessage)
  );
}

/** Starts (or restarts) an instance on its fixed port and waits until it serves. */
async function startInstance(inst: Instance, signal?: AbortSignal): Promise<void> {
  inst.child = await startLedgerPlugin({
    ...(signal !== undefined && { signal }),
    port: inst.port,
    ledger: inst.ledger,
    id: inst.id,
    ...(inst.link !== undefined && {
      netns: { name: inst.link.ns, host: inst.link.instanceAddress },
    }),
  });
}

/** Restarts a killed instance, trying again (as a harness error) if it does not come up. */
async function restartInstance(
  inst: Instance,
  harnessError: (what: string, error: unknown) => void,
  signal: AbortSignal,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await startInstance(inst, signal);
      return;
    } catch (error) {
      if (signal.aborted) throw error;
      harnessError(`restart ${inst.id}, attempt ${attempt}`, error);
      if (attempt >= 3) throw error;
    }
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The report as the lines `npm run chaos` prints. */
export function formatReport(report: ChaosReport): string {
  const f = report.faults;
  const c = report.calls;
  const lines = [
    `chaos run: ${report.options.instances} instances, ${Math.round(report.elapsedMs / 1000)} s, ` +
      `${report.options.concurrency} concurrent callers, call deadline ${report.options.callTimeoutMs} ms`,
    `seed ${report.seed} (replay with --seed ${report.seed})`,
    `faults injected: ${f.total} (latency ${f.latency}, reset ${f.reset}, blackhole ${f.blackhole}, ` +
      `slow ${f.slow}, partition ${f.partition} [link down ${report.partitionKinds["link-down"]}, ` +
      `route removed ${report.partitionKinds["route-removed"]}], SIGKILL ${f.kill}, of which ` +
      `${report.refusedKills} with refused connections)`,
    ...(report.partitionsUnavailable !== undefined
      ? [`no network partitions: ${report.partitionsUnavailable}`]
      : []),
    `fault-seconds: latency ${report.faultSeconds.latency}, blackhole ${report.faultSeconds.blackhole}, ` +
      `slow ${report.faultSeconds.slow}, partition ${report.faultSeconds.partition}, ` +
      `dead ${report.faultSeconds.dead}`,
    `calls: ${c.total} (${c.reads} reads, ${c.writes} writes), succeeded ${c.succeeded}, ` +
      `failed with a clear error ${c.failedClear}, without ${c.failedUnclear}`,
    `failures by code: ${JSON.stringify(c.byCode)}`,
    `ejections: ${report.ejections}; killed instance ejected within ${report.detectionMaxMs} ms (max), ` +
      `${report.undetectedKills} kills not ejected before restart; ` +
      `failover SIGKILL -> first success after ejection p50 ${report.failoverP50Ms} ms, max ${report.failoverMaxMs} ms; ` +
      `${c.failedOnEjectedDead} calls failed on an already-ejected dead instance`,
    "targets:",
    ...report.targets.map(
      (t) => `  ${t.pass ? "PASS" : "FAIL"}  ${t.name}: ${t.value} (target ${t.target})`,
    ),
    "sample errors:",
    ...report.sampleErrors.map((e) => `  ${e.slice(0, 400)}`),
    ...(report.harnessErrors.length > 0
      ? [
          `harness errors (${report.harnessErrors.length}; the run proves nothing about the library):`,
          ...report.harnessErrors.slice(0, 10).map((e) => `  ${e.slice(0, 400)}`),
        ]
      : []),
    report.verdict === "pass"
      ? "RESULT: PASS"
      : report.verdict === "harness-error"
        ? "RESULT: HARNESS ERROR"
        : "RESULT: FAIL",
  ];
  return lines.join("\n");
}
