/**
 * Per-instance negotiation in a cluster, with real ledger plugins on
 * loopback: every instance is handshaken before it takes calls, instances
 * that cannot serve the host are held out with a reason in status() and
 * events, and a cluster is upgraded from protocol version 1 to 2 one
 * instance at a time, both versions in service, under 16 callers, with the
 * chaos suite's guarantees: 0 hung, 0 executed twice, 0 acknowledged writes
 * lost (audited against the plugins' ledgers).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { freePort } from "../chaos/suite.js";
import {
  PluginClient,
  PluginError,
  silentLogger,
  cluster,
  staticEndpoints,
  type ClusterEvent,
  type EndpointStatus,
} from "../src/index.js";
import { KV, handshake } from "../examples/kv/shared.js";
import { waitFor } from "./helpers.js";
import { answeredBy, startLedger, stopAll, type LedgerInstance } from "./cluster-helpers.js";

const instances: LedgerInstance[] = [];
after(() => stopAll(instances));

async function ledger(id: string, versions: string): Promise<LedgerInstance> {
  const inst = await startLedger(id, { LEDGER_PROTOCOL_VERSIONS: versions });
  instances.push(inst);
  return inst;
}

const quickHealth = { intervalMs: 100, timeoutMs: 5_000, failureThreshold: 2 } as const;

function hostFor(
  versions: readonly number[],
  urls: readonly string[],
  events: ClusterEvent[] = [],
): {
  client: PluginClient<Record<never, never>, Record<number, { kv: typeof KV }>>;
  discovery: ReturnType<typeof staticEndpoints>;
} {
  const discovery = staticEndpoints(urls);
  const client = new PluginClient({
    handshake,
    versionedPlugins: Object.fromEntries(versions.map((v) => [v, { kv: KV }])),
    logger: silentLogger,
    source: cluster({
      discovery,
      health: quickHealth,
      negotiation: { retryMs: 300 },
      onEvent: (e) => events.push(e),
    }),
  });
  return { client, discovery };
}

const byId = (status: readonly EndpointStatus[], url: string): EndpointStatus | undefined =>
  status.find((e) => e.url === url);

test("an instance that shares no protocol version with the host is held out, with its reason in status() and events, and takes no call", async () => {
  const v1 = await ledger("n-v1", "1");
  const v3 = await ledger("n-v3", "3");
  const events: ClusterEvent[] = [];
  const { client } = hostFor([1, 2], [v1.url, v3.url], events);
  await client.start();
  try {
    assert.equal(client.protocolVersion, 1);
    const status = client.status().endpoints;
    assert.deepEqual(
      {
        admission: byId(status, v1.url)?.admission,
        version: byId(status, v1.url)?.protocolVersion,
      },
      { admission: "serving", version: 1 },
    );
    const held = byId(status, v3.url);
    assert.equal(held?.admission, "held-out");
    assert.equal(
      held?.reason,
      "protocol version mismatch: the instance speaks [3], this host speaks [1, 2]",
    );
    const heldEvent = events.find((e) => e.type === "held-out");
    assert.ok(heldEvent?.type === "held-out" && heldEvent.reason === held?.reason);
    const kv = client.dispense("kv");
    for (let i = 0; i < 20; i++) await kv.put({ key: `w-${i}` });
    const answered = new Set<string>();
    for (let i = 0; i < 20; i++) answered.add(answeredBy((await kv.get({ key: "k" })).value));
    assert.deepEqual([...answered], ["n-v1"]);
    assert.equal(v3.writes().length, 0);
    assert.equal(v1.writes().length, 20);
  } finally {
    await client.close();
  }
});

test("a host that speaks only version 2 holds out version-1 instances; with none it can use, start() reports the mismatch and calls name every instance's reason", async () => {
  const old = await ledger("m-v1", "1");
  const both = await ledger("m-v12", "1,2");
  const { client } = hostFor([2], [old.url, both.url]);
  await client.start();
  try {
    assert.equal(client.protocolVersion, 2);
    const kv = client.dispense("kv");
    for (let i = 0; i < 10; i++)
      assert.equal(answeredBy((await kv.get({ key: "k" })).value), "m-v12");
    assert.match(
      byId(client.status().endpoints, old.url)?.reason ?? "",
      /speaks \[1\], this host speaks \[2\]/,
    );
  } finally {
    await client.close();
  }

  const none = hostFor([2], [old.url]).client;
  await assert.rejects(none.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.equal(e.kind, "version-mismatch");
    assert.match(e.message, /the plugin speaks \[1\], this host speaks \[2\]/);
    return true;
  });
  await none.close();
});

test("rolling upgrade from protocol version 1 to 2 under 16 callers, both versions in service: 0 hung, 0 executed twice, 0 lost, 0 failed", async () => {
  const olds = await Promise.all([0, 1, 2].map((i) => ledger(`r-v1-${i}`, "1")));
  const events: ClusterEvent[] = [];
  const { client, discovery } = hostFor(
    [1, 2],
    olds.map((i) => i.url),
    events,
  );
  await client.start();
  const kv = client.dispense("kv");
  assert.equal(client.protocolVersion, 1);

  const acked = new Set<string>();
  const sent = new Set<string>();
  const failures: string[] = [];
  let hung = 0;
  let calls = 0;
  const answeredBy_ = new Map<string, number>();
  let stop = false;
  const deadlineMs = 5_000;
  const watch = async <T>(call: Promise<T>): Promise<T> => {
    const timer = setTimeout(() => hung++, deadlineMs + 250);
    try {
      return await call;
    } finally {
      clearTimeout(timer);
    }
  };
  const caller = async (n: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      calls++;
      try {
        if (i % 2 === 0) {
          const id = `c${n}-${i}-${randomUUID().slice(0, 8)}`;
          sent.add(id);
          await watch(kv.put({ key: id }, { timeoutMs: deadlineMs }));
          acked.add(id);
        } else {
          const res = await watch(kv.get({ key: "k" }, { timeoutMs: deadlineMs }));
          const who = answeredBy(res.value);
          answeredBy_.set(who, (answeredBy_.get(who) ?? 0) + 1);
        }
      } catch (e) {
        failures.push(ConnectError.from(e).message);
      }
    }
  };
  const callers = Array.from({ length: 16 }, (_, n) => caller(n));

  const news: LedgerInstance[] = [];
  let bothInService = false;
  let heldOut: LedgerInstance | undefined;
  for (let step = 0; step < 3; step++) {
    const next = await ledger(`r-v2-${step}`, "1,2");
    news.push(next);
    if (step === 1) {
      // A stray instance of an unknown version joins mid-upgrade: held out.
      heldOut = await ledger("r-v3", "3");
    }
    const urls = [...olds.slice(step), ...news, ...(heldOut ? [heldOut] : [])].map((i) => i.url);
    discovery.update(urls);
    await waitFor(
      `${next.id} negotiated at version 2`,
      () => byId(client.status().endpoints, next.url)?.protocolVersion === 2,
      10_000,
    );
    // Both versions take calls now: one v1 instance and one v2 instance
    // answer reads within the same window.
    if (step === 1) {
      const seen = new Set<string>();
      await waitFor(
        "a v1 and a v2 instance both answering",
        async () => {
          seen.add(answeredBy((await kv.get({ key: "probe" })).value));
          return (
            [...seen].some((s) => s.startsWith("r-v1")) &&
            [...seen].some((s) => s.startsWith("r-v2"))
          );
        },
        10_000,
      );
      bothInService = true;
    }
    // Retire the oldest v1 instance: out of discovery, drained, then asked
    // to stop (SIGTERM is the plugin's graceful shutdown).
    const old = olds[step]!;
    discovery.update(urls.filter((u) => u !== old.url));
    // status() lists it (`leaving`) until its calls in flight have ended.
    await waitFor(
      `${old.id} out of the pool, its calls done`,
      () => byId(client.status().endpoints, old.url) === undefined,
      10_000,
    );
    old.child.kill("SIGTERM");
    await new Promise<void>((resolve) => {
      if (old.child.exitCode !== null) resolve();
      else old.child.once("exit", () => resolve());
    });
    await new Promise((r) => setTimeout(r, 300));
  }
  stop = true;
  await Promise.all(callers);

  const status = client.status().endpoints;
  await client.close();

  // The audit, as the chaos suite does it: every write executed at most
  // once across all ledgers, every acknowledged write present.
  const executed = new Map<string, number>();
  for (const inst of [...olds, ...news, heldOut!]) {
    for (const id of inst.writes()) executed.set(id, (executed.get(id) ?? 0) + 1);
  }
  const twice = [...executed].filter(([, n]) => n > 1).length;
  const lost = [...acked].filter((id) => !executed.has(id)).length;
  const strays = [...executed.keys()].filter((id) => !sent.has(id)).length;
  console.log(
    `rolling upgrade v1 -> v2: ${calls} calls, ${acked.size} writes acknowledged, ` +
      `${failures.length} failed, ${hung} hung, ${twice} executed twice, ${lost} lost; ` +
      `answered by ${JSON.stringify(Object.fromEntries(answeredBy_))}`,
  );
  assert.equal(hung, 0);
  assert.equal(twice, 0);
  assert.equal(lost, 0);
  assert.equal(strays, 0);
  assert.deepEqual(failures, []);
  assert.ok(bothInService);
  assert.ok(acked.size > 100, `only ${acked.size} writes`);
  // The stray v3 instance took nothing and is held out with its reason.
  assert.equal(heldOut!.writes().length, 0);
  assert.equal(answeredBy_.get("r-v3") ?? 0, 0);
  assert.equal(byId(status, heldOut!.url)?.admission, "held-out");
  assert.ok(events.some((e) => e.type === "held-out" && e.id.includes(String(heldOut!.port))));
  // Every v1 instance served before the upgrade, every v2 one after.
  for (const inst of [...olds, ...news]) assert.ok((answeredBy_.get(inst.id) ?? 0) > 0, inst.id);
  assert.deepEqual(
    status.filter((e) => e.admission === "serving").map((e) => e.protocolVersion),
    [2, 2, 2],
  );
  assert.ok(events.filter((e) => e.type === "negotiated" && e.version === 2).length >= 3);
  await stopAll([...news, heldOut!]);
});

test("the client's Handshake fails with every instance's reason when none can be reached", async () => {
  // A free port nobody listens on: connections are refused at once.
  const port = await freePort();
  const { client } = hostFor([1], [`http://127.0.0.1:${port}`]);
  await assert.rejects(client.start(), (e: unknown) => {
    assert.ok(e instanceof PluginError);
    assert.match(
      e.message,
      new RegExp(`127\\.0\\.0\\.1:${port} negotiating \\(handshake failed: .*ECONNREFUSED`),
    );
    return true;
  });
  await client.close();
});

test("a call fails at once (Unavailable, with the reason) when the only instance left failed its Handshake, instead of waiting out its deadline", async () => {
  const v1 = await ledger("f-v1", "1");
  const { client, discovery } = hostFor([1], [v1.url]);
  await client.start();
  try {
    const kv = client.dispense("kv");
    await kv.put({ key: "a", value: new TextEncoder().encode("1") });
    // Discovery now lists only an address where nothing listens.
    const port = await freePort();
    const gone = `http://127.0.0.1:${port}`;
    discovery.update([gone]);
    await waitFor(
      "the new instance's first Handshake to fail",
      () => /handshake failed/.test(byId(client.status().endpoints, gone)?.reason ?? ""),
      10_000,
    );
    // A deadline far beyond anything this test waits for: a call that waited
    // for the unreachable instance would end in DeadlineExceeded, not this.
    const error = await kv.get({ key: "a" }, { timeoutMs: 600_000 }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    assert.ok(error !== undefined, "the call failed");
    assert.equal(Code[error.code], "Unavailable");
    assert.match(
      error.rawMessage,
      new RegExp(`127\\.0\\.0\\.1:${port} negotiating \\(handshake failed: .*ECONNREFUSED`),
    );
  } finally {
    await client.close();
  }
});
