/**
 * Host services that plugins call back (docs/callbacks.md), in every
 * location: unary and server-streaming callbacks, deadlines and cancellation
 * both ways, and the errors a plugin sees when it cannot call back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  PluginClient,
  PluginError,
  cluster,
  implement,
  inProcess,
  remote,
  subprocess,
  type PluginSource,
} from "../src/index.js";
import { Jobs, handshake } from "../examples/callbacks/shared.js";
import { callbackDefinition } from "./fixtures/callback-jobs.js";
import {
  callbackPluginMain,
  jobsClient,
  lastFailure,
  progressService,
  type ProgressLog,
} from "./callbacks-helpers.js";
import { MemoryLogger, startNetworkPlugin, tempDir, waitFor } from "./helpers.js";

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
  [
    "subprocess (framed)",
    () => Promise.resolve(subprocess(process.execPath, [callbackPluginMain])),
  ],
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

  test("hostServices with a remote plugin over HTTP/1.1 is refused when the client is made (the URL's password not shown)", () => {
    assert.throws(
      () =>
        jobsClient(remote("http://user:s3cret@127.0.0.1:1", { httpVersion: "1.1" }), [
          progressService("x").service,
        ]),
      (e: unknown) =>
        e instanceof PluginError &&
        e.kind === "invalid-config" &&
        /hostServices need HTTP\/2 to the plugin at http:\/\/user:\*\*\*@127\.0\.0\.1:1/.test(
          e.message,
        ) &&
        !e.message.includes("s3cret"),
    );
  });
});

describe("callbacks: a plugin whose tunnel code does not load", () => {
  // A launched plugin loads the tunnel's modules on the first tunnel, not at
  // start-up (cold start). A broken install (here: a real copy of dist/ with
  // one module deleted) must then say what failed, to the host and in the
  // plugin's log, not "internal error".
  test("the host's start fails naming the load failure, and the plugin logs it", async () => {
    const root = tempDir("cp-broken-install-");
    const dist = (path: string): string => fileURLToPath(new URL(`../${path}`, import.meta.url));
    for (const part of ["src", "examples", "test/fixtures/callback-jobs.js"]) {
      cpSync(dist(part), join(root, part), { recursive: true });
    }
    writeFileSync(join(root, "package.json"), '{"type":"module"}');
    symlinkSync(dist("../node_modules"), join(root, "node_modules"));
    const main = join(root, "test", "fixtures", "plugin.js");
    writeFileSync(
      main,
      'import { serve } from "../../src/plugin.js";\n' +
        'import { callbackDefinition } from "./callback-jobs.js";\n' +
        "await serve(callbackDefinition());\n",
    );
    rmSync(join(root, "src", "transport", "framed", "client.js"));
    const logger = new MemoryLogger();
    const client = new PluginClient({
      handshake,
      plugins: { jobs: Jobs },
      source: subprocess(process.execPath, [main]),
      logger,
      hostServices: [progressService("broken").service],
    });
    try {
      await assert.rejects(client.start(), (e: unknown) => {
        assert.match(
          (e as Error).message,
          /could not open the callback tunnel to .*: the plugin could not load its callback tunnel code \(ERR_MODULE_NOT_FOUND\)/,
        );
        return true;
      });
      await waitFor("the plugin to log why", () =>
        logger.records.some(
          (r) =>
            r.source === "stderr" &&
            r.level === "error" &&
            /could not load its callback tunnel code: Cannot find module .*framed\/client\.js/.test(
              r.message,
            ),
        ),
      );
    } finally {
      await client.close();
    }
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
