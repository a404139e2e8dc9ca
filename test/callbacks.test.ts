/**
 * Host services that plugins call back (docs/callbacks.md), in every
 * location: unary and server-streaming callbacks, deadlines and cancellation
 * both ways, and the errors a plugin sees when it cannot call back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import {
  PluginClient,
  PluginError,
  cluster,
  implement,
  inProcess,
  remote,
  silentLogger,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { Jobs, Progress, handshake } from "../examples/callbacks/shared.js";
import { callbackDefinition } from "./fixtures/callback-jobs.js";
import { startNetworkPlugin, waitFor } from "./helpers.js";

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

const network: Array<Awaited<ReturnType<typeof startNetworkPlugin>>> = [];
const networkPlugin = async (): Promise<string> => {
  const started = await startNetworkPlugin("", {}, callbackPluginMain);
  network.push(started);
  return started.url;
};
after(async () => {
  await Promise.all(network.map((n) => n.stop()));
});

const locations: Array<[string, () => Promise<PluginSource>]> = [
  ["subprocess (framed)", () => Promise.resolve(subprocess(process.execPath, [callbackPluginMain]))],
  [
    "subprocess (Connect over HTTP/2)",
    () =>
      Promise.resolve(
        subprocess(process.execPath, [callbackPluginMain], { transports: ["connect"] }),
      ),
  ],
  ["remote (HTTP/2)", async () => remote(await networkPlugin())],
  ["cluster of two instances", async () => cluster([await networkPlugin(), await networkPlugin()])],
  ["in process (direct)", () => Promise.resolve(inProcess(callbackDefinition()))],
  [
    "in process (serialize)",
    () => Promise.resolve(inProcess(callbackDefinition(), { mode: "serialize" })),
  ],
];

for (const [where, source] of locations) {
  describe(`callbacks: plugin ${where}`, () => {
    let client: PluginClient<{ jobs: typeof Jobs }>;
    let log: ProgressLog;
    before(async () => {
      const progress = progressService(where);
      log = progress.log;
      client = jobsClient(await source(), [progress.service]);
      await client.start();
    });
    after(() => client.close());

    test("unary callbacks reach the host's service", async () => {
      const res = await client.dispense("jobs").run({ name: "unary", steps: 4 });
      assert.deepEqual(res.notes, [
        "keep_going=true",
        "keep_going=true",
        "keep_going=false",
        "keep_going=false",
      ]);
      assert.deepEqual(
        log.reports.filter((r) => r.startsWith("unary")),
        ["unary 1/4", "unary 2/4", "unary 3/4", "unary 4/4"],
      );
    });

    test("a server-streaming callback", async () => {
      const res = await client.dispense("jobs").run({ name: "stream" });
      assert.deepEqual(res.notes, [`host=${where}`, "color=blue", "size=3"]);
    });

    test("callbacks from a server-streaming plugin method", async () => {
      const steps: number[] = [];
      for await (const m of client.dispense("jobs").watch({ name: "watch", steps: 3 })) {
        steps.push(m.step);
      }
      assert.deepEqual(steps, [1, 2, 3]);
      assert.deepEqual(
        log.reports.filter((r) => r.startsWith("watch")),
        ["watch 1/3", "watch 2/3", "watch 3/3"],
      );
    });

    test("the host's deadline reaches the host service through the callback", async () => {
      const before = log.hangs.length;
      await assert.rejects(
        client.dispense("jobs").run({ name: "inherit" }, { timeoutMs: 600 }),
        (e: unknown) => ConnectError.from(e).code === Code.DeadlineExceeded,
      );
      await waitFor("the host service to see the deadline", () => log.hangs.length > before);
      const hang = log.hangs[before];
      assert.ok(hang !== undefined);
      assert.ok(
        hang.timeoutMs !== undefined && hang.timeoutMs <= 600 && hang.timeoutMs > 0,
        `host service saw timeoutMs ${hang.timeoutMs}`,
      );
      await waitFor("the host service's call to end", () => hang.ended !== undefined);
    });

    test("the host cancelling its call cancels the callback in the host", async () => {
      const before = log.hangs.length;
      const abort = new AbortController();
      const call = client.dispense("jobs").run({ name: "inherit" }, { signal: abort.signal });
      await waitFor("the callback to reach the host", () => log.hangs.length > before);
      abort.abort();
      await assert.rejects(call, (e: unknown) => ConnectError.from(e).code === Code.Canceled);
      const hang = log.hangs[before];
      await waitFor("the host service's call to be cancelled", () => hang?.ended !== undefined);
    });

    test("the plugin's own callback deadline", async () => {
      const before = log.hangs.length;
      const res = await client.dispense("jobs").run({ name: "callback-deadline" });
      assert.equal(res.notes.length, 1);
      assert.match(res.notes[0] ?? "", /^error:DeadlineExceeded/);
      const hang = log.hangs[before];
      assert.ok(hang?.timeoutMs !== undefined && hang.timeoutMs <= 200);
      await waitFor("the host service's call to end", () => hang.ended !== undefined);
    });

    test("the plugin cancelling its callback cancels it in the host", async () => {
      const before = log.hangs.length;
      const res = await client.dispense("jobs").run({ name: "callback-cancel" });
      assert.match(res.notes[0] ?? "", /^error:Canceled/);
      const hang = log.hangs[before];
      await waitFor("the host service's call to be cancelled", () => hang?.ended === "Canceled");
    });
  });
}

describe("callbacks: a cluster gives every instance its own tunnel", () => {
  test("calls spread over both instances all call back", async () => {
    const progress = progressService("cluster");
    const client = jobsClient(cluster([await networkPlugin(), await networkPlugin()]), [
      progress.service,
    ]);
    await client.start();
    try {
      const jobs = client.dispense("jobs");
      const pids = new Set<string>();
      for (let round = 0; round < 5 && pids.size < 2; round++) {
        const results = await Promise.all(
          Array.from({ length: 8 }, () => jobs.run({ name: "pid" })),
        );
        for (const r of results) pids.add(r.notes[0] ?? "");
      }
      assert.equal(pids.size, 2, `answered by ${[...pids].join(", ")}`);
      assert.ok(progress.log.reports.length >= 8);
    } finally {
      await client.close();
    }
  });
});

describe("callbacks: what a plugin sees when it cannot call back", () => {
  test("a host without hostServices: FailedPrecondition naming what is missing", async () => {
    for (const source of [
      subprocess(process.execPath, [callbackPluginMain]),
      remote(await networkPlugin()),
      inProcess(callbackDefinition()),
    ]) {
      const client = jobsClient(source, []);
      await client.start();
      try {
        const res = await client.dispense("jobs").run({ name: "unary", steps: 1 });
        assert.equal(res.notes.length, 1);
        assert.match(
          res.notes[0] ?? "",
          /^error:FailedPrecondition: cannot call the host's example\.jobs\.v1\.Progress: the call came from a host that offers no services \(give PluginClient hostServices\)/,
        );
      } finally {
        await client.close();
      }
    }
  });

  test("a host that does not serve the method: Unimplemented from the host", async () => {
    const client = jobsClient(remote(await networkPlugin()), [
      implement(Jobs, { run: () => ({}), async *watch() {} }),
    ]);
    await client.start();
    try {
      const res = await client.dispense("jobs").run({ name: "unary", steps: 1 });
      assert.match(
        res.notes[0] ?? "",
        /^error:Unimplemented: .*no method \/example\.jobs\.v1\.Progress\/Report on this host/,
      );
    } finally {
      await client.close();
    }
  });

  test("hostServices with a remote plugin over HTTP/1.1 is refused when the client is made", () => {
    assert.throws(
      () =>
        jobsClient(remote("http://127.0.0.1:1", { httpVersion: "1.1" }), [
          progressService("x").service,
        ]),
      (e: unknown) =>
        e instanceof PluginError &&
        e.kind === "invalid-config" &&
        /hostServices need HTTP\/2 to the plugin/.test(e.message),
    );
  });
});

describe("callbacks: the host goes away during a callback", () => {
  test("closing the client fails the plugin's pending callback with Unavailable", async () => {
    const url = await networkPlugin();
    const progress = progressService("closing");
    const client = jobsClient(remote(url), [progress.service], { gracePeriodMs: 300 });
    await client.start();
    const call = client.dispense("jobs").run({ name: "host-gone" });
    call.catch(() => {});
    await waitFor("the callback to reach the host", () => progress.log.hangs.length > 0);
    const closedAt = Date.now();
    await client.close();
    const failure = await lastFailure(url);
    assert.match(failure.text, /^Unavailable@\d+ the host's callback tunnel closed/);
    // The grace period (300 ms) lets the call finish if it can; then the
    // tunnel closes and the callback fails at once.
    assert.ok(failure.at - closedAt < 1_500, `failed ${failure.at - closedAt} ms after close`);
  });
});

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
