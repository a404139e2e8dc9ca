import cliProgress from "cli-progress";
import type { ProgressListener } from "../oci/registry-client.js";

/**
 * Progress bars on stderr for uploads and downloads, one per blob, only
 * when stderr is a terminal and --json is off; otherwise a no-op, so that
 * logs and pipes get no progress output at all.
 */
export function progressBars(enabled: boolean): {
  listener: ProgressListener | undefined;
  stop: () => void;
} {
  if (!enabled || process.stderr.isTTY !== true) return { listener: undefined, stop: () => {} };
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: " {direction} {name} [{bar}] {percentage}% {value}/{total} bytes",
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    listener: (e) => {
      const key = `${e.direction}:${e.digest}`;
      let bar = bars.get(key);
      const payload = {
        direction: e.direction === "upload" ? "push" : "pull",
        name: e.digest.slice(0, 19),
      };
      if (bar === undefined) {
        bar = multi.create(Math.max(e.total, 1), 0, payload);
        bars.set(key, bar);
      }
      bar.setTotal(Math.max(e.total, 1));
      bar.update(e.done, payload);
    },
    stop: () => multi.stop(),
  };
}
