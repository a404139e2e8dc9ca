/**
 * Discovery against real components started on loopback: dnsmasq serving
 * SRV records and a three-member etcd cluster (one member is killed). Each
 * source then drives a cluster of real plugin instances. Kubernetes
 * discovery runs against a real kube-apiserver in kubernetes.test.ts.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
// Not part of etcd3's typed API: its switch to pick hosts in a fixed order.
import { ConnectionPool } from "etcd3/lib/connection-pool.js";
import { cluster, dnsSrv, etcdDiscovery, type Endpoint } from "../src/index.js";
import { freePort } from "../chaos/suite.js";
import { etcdHealthy, kvClient, tempDir, waitFor } from "./helpers.js";
import { answeredBy, startLedger, stopAll, type LedgerInstance } from "./cluster-helpers.js";

const children: ChildProcess[] = [];
const instances: LedgerInstance[] = [];
after(async () => {
  for (const c of children) c.kill("SIGKILL");
  await stopAll(instances);
});

/** Collects the lists a watch reports. */
function recorder(): { lists: Endpoint[][]; last: () => string[] } {
  const lists: Endpoint[][] = [];
  return { lists, last: () => (lists.at(-1) ?? []).map((e) => e.url) };
}

// ---------------------------------------------------------------- DNS SRV

async function startDnsmasq(
  port: number,
  records: { name: string; port: number }[],
): Promise<ChildProcess> {
  const args = [
    "--keep-in-foreground",
    `--port=${port}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--no-resolv",
    "--no-hosts",
    "--conf-file=/dev/null",
    "--pid-file=",
    "--log-facility=-",
    // Authoritative for plugins.test: unknown names there are NXDOMAIN.
    "--local=/plugins.test/",
    ...records.flatMap((r) => [
      `--srv-host=_kv._tcp.plugins.test,${r.name}.plugins.test,${r.port}`,
      `--host-record=${r.name}.plugins.test,127.0.0.1`,
    ]),
  ];
  const child = spawn("/usr/sbin/dnsmasq", args, { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (stderr.includes("started")) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`dnsmasq exited with ${code}: ${stderr}`));
    });
    setTimeout(() => reject(new Error(`dnsmasq did not start: ${stderr}`)), 10_000).unref();
  });
  return child;
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

test("DNS SRV (dnsmasq): discover finds the instances, watch follows a change, and a cluster calls them", async () => {
  const pool = await Promise.all([startLedger("dns0"), startLedger("dns1")]);
  instances.push(...pool);
  const dnsPort = await freePort();
  let dns = await startDnsmasq(dnsPort, [
    { name: "kv0", port: pool[0].port },
    { name: "kv1", port: pool[1].port },
  ]);
  const discovery = dnsSrv("_kv._tcp.plugins.test", {
    servers: [`127.0.0.1:${dnsPort}`],
    intervalMs: 100,
  });
  assert.deepEqual(
    await discovery.discover(),
    [
      {
        id: `kv0.plugins.test:${pool[0].port}`,
        url: `http://127.0.0.1:${pool[0].port}`,
        metadata: { target: "kv0.plugins.test", priority: "0", weight: "0" },
      },
      {
        id: `kv1.plugins.test:${pool[1].port}`,
        url: `http://127.0.0.1:${pool[1].port}`,
        metadata: { target: "kv1.plugins.test", priority: "0", weight: "0" },
      },
    ].sort((a, b) => (a.id < b.id ? -1 : 1)),
  );

  const client = kvClient(cluster({ discovery, balancer: "round-robin", health: false }));
  await client.start();
  try {
    const kv = client.dispense("kv");
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(answeredBy((await kv.get({ key: "k" })).value));
    assert.deepEqual([...seen].sort(), ["dns0", "dns1"]);

    // The zone changes: only kv1 is published now.
    await stop(dns);
    dns = await startDnsmasq(dnsPort, [{ name: "kv1", port: pool[1].port }]);
    await waitFor(
      "calls to go only to dns1",
      async () => {
        const answers = new Set<string>();
        for (let i = 0; i < 4; i++) answers.add(answeredBy((await kv.get({ key: "k" })).value));
        return answers.size === 1 && answers.has("dns1");
      },
      10_000,
    );
  } finally {
    await client.close();
    await stop(dns);
  }
});

test("DNS SRV: a name with no records is an empty list; an unreachable server is a clear error", async () => {
  const dnsPort = await freePort();
  const dns = await startDnsmasq(dnsPort, []);
  try {
    const empty = dnsSrv("_none._tcp.plugins.test", { servers: [`127.0.0.1:${dnsPort}`] });
    assert.deepEqual(await empty.discover(), []);
  } finally {
    await stop(dns);
  }
  const deadPort = await freePort();
  const unreachable = dnsSrv("_kv._tcp.plugins.test", {
    servers: [`127.0.0.1:${deadPort}`],
    timeoutMs: 200,
  });
  await assert.rejects(
    unreachable.discover(),
    /^Error: DNS SRV lookup of _kv\._tcp\.plugins\.test failed: /,
  );
});

// ---------------------------------------------------------------- etcd

interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly child: ChildProcess;
}

async function startEtcdCluster(): Promise<EtcdMember[]> {
  const dir = tempDir("cp-etcd-");
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const names = ["m0", "m1", "m2"];
  const peer = (i: number): string => `http://127.0.0.1:${ports[i * 2 + 1]}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(",");
  const members = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[i * 2]}`;
    const child = spawn(
      "/usr/bin/etcd",
      [
        "--name",
        name,
        "--data-dir",
        join(dir, name),
        "--listen-client-urls",
        clientUrl,
        "--advertise-client-urls",
        clientUrl,
        "--listen-peer-urls",
        peer(i),
        "--initial-advertise-peer-urls",
        peer(i),
        "--initial-cluster",
        initialCluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "cp-test",
        "--heartbeat-interval",
        "50",
        "--election-timeout",
        "500",
      ],
      { stdio: ["ignore", "ignore", "ignore"] },
    );
    children.push(child);
    return { name, clientUrl, child };
  });
  for (const m of members) {
    await waitFor(`etcd member ${m.name} to be healthy`, () => etcdHealthy(m.clientUrl), 30_000);
  }
  return members;
}

test("etcd (three members): instances register under a lease, the host watches the prefix, and losing a member does not stop discovery", async () => {
  const members = await startEtcdCluster();
  const hosts = members.map((m) => m.clientUrl);
  // With a fixed order every etcd3 call (the watch included) goes to the
  // last host of the list first, so killing that member is sure to kill the
  // member the host's watch is on.
  ConnectionPool.deterministicOrder = true;
  const watchMember = members.at(-1)!;
  const prefix = "/plugins/kv/";
  const env = { ETCD_HOSTS: hosts.join(","), ETCD_PREFIX: prefix, ETCD_TTL: "2" };
  // The instance registers itself once it serves (see chaos/ledger-plugin.ts).
  const first = await startLedger("etcd0", env);
  instances.push(first);
  const discovery = etcdDiscovery({ hosts, prefix });
  await waitFor("etcd0 to register", async () => (await discovery.discover()).length === 1);
  assert.deepEqual(await discovery.discover(), [{ id: "etcd0", url: first.url }]);

  const seen = recorder();
  const client = kvClient(
    cluster({
      discovery,
      health: false,
      onEvent: (e) => {
        if (e.type === "endpoints") seen.lists.push(e.ids.map((id) => ({ id, url: id })));
      },
    }),
  );
  await client.start();
  try {
    const kv = client.dispense("kv");
    assert.equal(answeredBy((await kv.get({ key: "k" })).value), "etcd0");

    // Lose the member the watch is on: the client and its watch move to the
    // other two, and a new instance is still seen.
    const dead = new Promise((resolve) => watchMember.child.once("exit", resolve));
    watchMember.child.kill("SIGKILL");
    await dead;
    const second = await startLedger("etcd1", env);
    instances.push(second);
    await waitFor("the watch to report etcd1", () => seen.last().includes("etcd1"), 15_000);

    // An instance killed without deregistering disappears when its lease expires.
    first.kill();
    await waitFor("the watch to drop etcd0", () => !seen.last().includes("etcd0"), 15_000);
    assert.deepEqual(seen.last(), ["etcd1"]);
    assert.equal(answeredBy((await kv.get({ key: "k" })).value), "etcd1");
  } finally {
    await client.close();
  }
});
