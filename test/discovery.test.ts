/**
 * Discovery against real components started on loopback: dnsmasq serving
 * SRV records, a three-member etcd cluster (one member is killed), and, since
 * no Kubernetes API server can run here, a small fake API server that serves
 * EndpointSlice list and watch responses. Each source then drives a cluster
 * of real plugin instances.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as http from "node:http";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
// Not part of etcd3's typed API: its switch to pick hosts in a fixed order.
import { ConnectionPool } from "etcd3/lib/connection-pool.js";
import {
  cluster,
  dnsSrv,
  etcdDiscovery,
  kubernetesDiscovery,
  type Endpoint,
} from "../src/index.js";
import { freePort } from "../chaos/suite.js";
import { kvClient, tempDir, waitFor } from "./helpers.js";
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
    await waitFor(
      `etcd member ${m.name} to be healthy`,
      async () => {
        try {
          const res = await fetch(`${m.clientUrl}/health`);
          return ((await res.json()) as { health?: string }).health === "true";
        } catch {
          return false;
        }
      },
      30_000,
    );
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

// ---------------------------------------------------------------- Kubernetes (fake API server)

/**
 * A fake Kubernetes API server: the two requests Kubernetes discovery makes,
 * a list of EndpointSlices and a watch (newline-delimited JSON events).
 */
class FakeKubernetesApi {
  private slices = new Map<string, object>();
  private version = 1;
  private readonly watchers = new Set<http.ServerResponse>();
  readonly requests: string[] = [];
  readonly server = http.createServer((req, res) => this.handle(req, res));

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address() as { port: number };
    return `http://127.0.0.1:${address.port}`;
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  put(
    name: string,
    service: string,
    endpoints: { ip: string; port: number; ready?: boolean }[],
  ): void {
    const type = this.slices.has(name) ? "MODIFIED" : "ADDED";
    const port = endpoints[0]?.port ?? 0;
    const slice = {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name,
        namespace: "plugins",
        labels: { "kubernetes.io/service-name": service },
        resourceVersion: String(++this.version),
      },
      addressType: "IPv4",
      ports: [{ name: "grpc", port, protocol: "TCP" }],
      endpoints: endpoints.map((e, i) => ({
        addresses: [e.ip],
        conditions: { ready: e.ready ?? true },
        targetRef: { kind: "Pod", name: `${name}-pod-${i}` },
      })),
    };
    this.slices.set(name, slice);
    this.broadcast(type, slice);
  }

  remove(name: string): void {
    const slice = this.slices.get(name);
    if (slice === undefined) return;
    this.slices.delete(name);
    this.version++;
    this.broadcast("DELETED", slice);
  }

  private broadcast(type: string, object: object): void {
    for (const w of this.watchers) w.write(JSON.stringify({ type, object }) + "\n");
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.requests.push(`${req.method} ${url.pathname}?${url.searchParams.toString()}`);
    if (url.pathname !== "/apis/discovery.k8s.io/v1/namespaces/plugins/endpointslices") {
      res.writeHead(404).end();
      return;
    }
    if (url.searchParams.get("watch") === "true") {
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      this.watchers.add(res);
      res.on("close", () => this.watchers.delete(res));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSliceList",
        metadata: { resourceVersion: String(this.version) },
        items: [...this.slices.values()],
      }),
    );
  }
}

test("Kubernetes EndpointSlices (fake API server): list + watch, ready condition honoured, slices added and removed", async () => {
  const api = new FakeKubernetesApi();
  const server = await api.start();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server, skipTLSVerify: true }],
    users: [{ name: "test", token: "t" }],
    contexts: [{ name: "fake", cluster: "fake", user: "test" }],
    currentContext: "fake",
  });
  const pool = await Promise.all([startLedger("k0"), startLedger("k1")]);
  instances.push(...pool);
  // Both instances listen on 127.0.0.1 with different ports; one slice each.
  api.put("kv-a", "kv", [{ ip: "127.0.0.1", port: pool[0].port }]);
  api.put("kv-b", "kv", [{ ip: "127.0.0.1", port: pool[1].port, ready: false }]);
  const discovery = kubernetesDiscovery({ namespace: "plugins", service: "kv", kubeConfig: kc });
  assert.deepEqual(await discovery.discover(), [
    {
      id: `127.0.0.1:${pool[0].port}`,
      url: `http://127.0.0.1:${pool[0].port}`,
      metadata: { slice: "kv-a", pod: "kv-a-pod-0" },
    },
  ]);
  const seen = recorder();
  const client = kvClient(cluster({ discovery, balancer: "round-robin", health: false }));
  const stopWatch = discovery.watch((list) => seen.lists.push(list));
  await client.start();
  try {
    const kv = client.dispense("kv");
    assert.equal(answeredBy((await kv.get({ key: "k" })).value), "k0");
    await waitFor("the watch to be open", () => api.requests.some((r) => r.includes("watch=true")));
    api.put("kv-b", "kv", [{ ip: "127.0.0.1", port: pool[1].port, ready: true }]);
    await waitFor("kv-b to become ready", () => seen.last().length === 2);
    // Both instances serve once kv-b is ready: round-robin reaches each.
    const answered = new Set<string>();
    await waitFor("calls to reach both k0 and k1", async () => {
      answered.add(answeredBy((await kv.get({ key: "k" })).value));
      return answered.has("k0") && answered.has("k1");
    });
    api.remove("kv-a");
    await waitFor("kv-a to go", () => seen.last().length === 1);
    await waitFor("a call to reach k1", async () => {
      return answeredBy((await kv.get({ key: "k" })).value) === "k1";
    });
    // Not one lucky answer: with round-robin over what is left, every call goes to k1.
    const after: string[] = [];
    for (let i = 0; i < 20; i++) after.push(answeredBy((await kv.get({ key: "k" })).value));
    assert.deepEqual(new Set(after), new Set(["k1"]), `answers: ${after.join(",")}`);
    assert.ok(
      api.requests.some(
        (r) =>
          r.includes("labelSelector=kubernetes.io%2Fservice-name%3Dkv") && r.includes("watch=true"),
      ),
      `requests: ${api.requests.join(", ")}`,
    );
  } finally {
    stopWatch();
    await client.close();
    await api.close();
  }
});
