/**
 * Loaded into a server process with `node --import
 * file:///.../dist/bench/profile-preload.js`, so that a bench can profile a
 * window of its life (after a warm-up) rather than all of it. The first
 * SIGUSR2 starts node:inspector's CPU profiler (sampling every
 * PROFILE_INTERVAL_US µs, default 50) and its sampling heap profiler (every
 * PROFILE_HEAP_BYTES bytes, default 512, objects the GC collected included,
 * so that it counts what was allocated, not what stayed); the second stops
 * both and writes PROFILE_OUT.cpuprofile, .heapprofile and .gc.json (count
 * and total ms of each GC kind in the window), then writes PROFILE_OUT.done.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { PerformanceObserver, constants } from "node:perf_hooks";

const out = process.env.PROFILE_OUT;
const intervalUs = Number(process.env.PROFILE_INTERVAL_US ?? 50);
const heapBytes = Number(process.env.PROFILE_HEAP_BYTES ?? 512);

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (error, result) =>
      error === null ? resolve(result as T) : reject(error),
    ),
  );
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};

if (out !== undefined) {
  const session = new Session();
  session.connect();
  let running = false;
  let gc: Record<string, { count: number; ms: number }> = {};
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind =
        GC_KINDS[(entry as unknown as { detail: { kind: number } }).detail.kind] ?? "other";
      const g = (gc[kind] ??= { count: 0, ms: 0 });
      g.count++;
      g.ms += entry.duration;
    }
  });
  process.on("SIGUSR2", () => {
    void (async () => {
      if (!running) {
        running = true;
        gc = {};
        observer.observe({ entryTypes: ["gc"] });
        await post(session, "Profiler.enable");
        await post(session, "Profiler.setSamplingInterval", { interval: intervalUs });
        await post(session, "HeapProfiler.enable");
        await post(session, "HeapProfiler.startSampling", {
          samplingInterval: heapBytes,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        });
        await post(session, "Profiler.start");
        process.stderr.write("profile started\n");
        return;
      }
      running = false;
      const { profile } = await post<{ profile: unknown }>(session, "Profiler.stop");
      const heap = await post<{ profile: unknown }>(session, "HeapProfiler.stopSampling");
      observer.disconnect();
      writeFileSync(`${out}.cpuprofile`, JSON.stringify(profile));
      writeFileSync(`${out}.heapprofile`, JSON.stringify(heap.profile));
      writeFileSync(`${out}.gc.json`, JSON.stringify(gc));
      writeFileSync(`${out}.done`, "");
    })();
  });
}
