/**
 * Loaded into a bench's server or plugin process with `node --import
 * file:///.../dist/bench/loop-preload.js` (through NODE_OPTIONS, which a
 * bench's children inherit), so that a bench can count the process's
 * event loop iterations around a run: on SIGUSR2 it writes libuv's
 * counters (performance.nodeTiming.uvMetricsInfo: iterations, events
 * handled) to LOOP_STATS_DIR/PID.json. Without LOOP_STATS_DIR it does
 * nothing. Read with loopCounters() (proc-counters.ts).
 */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.LOOP_STATS_DIR;
if (dir !== undefined) {
  process.on("SIGUSR2", () => {
    const file = join(dir, `${process.pid}.json`);
    // Written aside and renamed: the reader never sees half a file.
    writeFileSync(`${file}.tmp`, JSON.stringify(performance.nodeTiming.uvMetricsInfo));
    renameSync(`${file}.tmp`, file);
  });
}
