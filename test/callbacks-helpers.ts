/** What the callback tests share: the fixture plugin, a host's Progress service, a jobs client. */
import { fileURLToPath } from "node:url";
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { PluginClient, implement, remote, silentLogger, type PluginSource } from "../src/index.js";
import { Jobs, Progress, handshake } from "../examples/callbacks/shared.js";
import { waitFor } from "./helpers.js";

export const callbackPluginMain = fileURLToPath(
  new URL("./fixtures/callback-plugin.js", import.meta.url),
);

/** What a host's Progress service saw. */
export interface ProgressLog {
  readonly reports: string[];
  /** Report calls named "hang": the deadline they arrived with, and how they ended. */
  readonly hangs: Array<{ timeoutMs: number | undefined; ended?: string }>;
}

/**
 * The host's Progress service: answers reports (keep_going while step < 3),
 * streams three settings naming `host`, and holds "hang" reports until their
 * signal aborts, recording the deadline and the reason.
 */
export function progressService(host: string): {
  service: ReturnType<typeof implement>;
  log: ProgressLog;
} {
  const log: ProgressLog = { reports: [], hangs: [] };
  const hang = (ctx: HandlerContext): Promise<never> =>
    new Promise((_resolve, reject) => {
      const entry: ProgressLog["hangs"][number] = { timeoutMs: ctx.timeoutMs() };
      log.hangs.push(entry);
      ctx.signal.addEventListener("abort", () => {
        entry.ended = `${Code[ConnectError.from(ctx.signal.reason).code]}`;
        reject(ctx.signal.reason as Error);
      });
    });
  const service = implement(Progress, {
    report(req, ctx) {
      if (req.name === "hang") return hang(ctx);
      log.reports.push(`${req.name} ${req.step}/${req.steps}`);
      return { keepGoing: req.step < 3 };
    },
    async *settings() {
      yield { key: "host", value: host };
      yield { key: "color", value: "blue" };
      yield { key: "size", value: "3" };
    },
  });
  return { service, log };
}

export function jobsClient(
  source: PluginSource,
  hostServices: ReturnType<typeof implement>[],
  extra: { gracePeriodMs?: number; interceptors?: Interceptor[] } = {},
): PluginClient<{ jobs: typeof Jobs }> {
  return new PluginClient({
    handshake,
    plugins: { jobs: Jobs },
    source,
    logger: silentLogger,
    hostServices,
    ...extra,
  });
}

/** The plugin's last recorded callback failure, asked by a fresh host. */
export async function lastFailure(url: string): Promise<{ text: string; at: number }> {
  const reader = jobsClient(remote(url), []);
  await reader.start();
  try {
    let text = "";
    await waitFor("the plugin to record the failure", async () => {
      const res = await reader.dispense("jobs").run({ name: "failures" });
      text = res.notes.at(-1) ?? "";
      return text !== "";
    });
    return { text, at: Number(/@(\d+)/.exec(text)?.[1]) };
  } finally {
    await reader.close();
  }
}
