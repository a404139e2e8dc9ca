/**
 * Kubernetes discovery while the real kube-apiserver restarts (see
 * kube-helpers.ts): killed mid-watch and started again; and killed between
 * the discovery's list and its watch, so that the restarted server's watch
 * cache answers the watch with a real 410 Gone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as net from "node:net";
import { Watch } from "@kubernetes/client-node";
import { cluster, kubernetesDiscovery, type Endpoint } from "../src/index.js";
import { kvClient, waitFor } from "./helpers.js";
import { answeredBy } from "./cluster-helpers.js";
import {
  createNamespace,
  deleteEndpointSlice,
  discoveryRules,
  putEndpointSlice,
  serviceAccountToken,
  useKubeTestBed,
  server,
  pods,
  UNDIALED_IP,
  ledgers,
  follow,
  portsOf,
  hostNamespace,
  type KubeApiServer,
} from "./kube-helpers.js";

const skip = useKubeTestBed();

test(
  "real API server restarted mid-watch: calls go on with the last list, errors are reported, and the watch resumes",
  { skip },
  async () => {
    const { namespace, kc } = await hostNamespace("restart");
    const [k0, k1] = await ledgers("r0", "r1");
    await putEndpointSlice(server, namespace, "kv-a", "kv", [{ ip: pods.podIp, port: k0.port }]);
    const discovery = kubernetesDiscovery({
      namespace,
      service: "kv",
      kubeConfig: kc,
      rewatchDelayMs: 200,
    });
    const seen = follow(discovery);
    const client = kvClient(cluster({ discovery, health: false, allowPlaintext: true }));
    await client.start();
    const kv = client.dispense("kv");
    try {
      // A change that arrives proves the watch is open.
      await putEndpointSlice(server, namespace, "kv-b", "kv", [{ ip: pods.podIp, port: k1.port }]);
      await waitFor("the watch to report kv-b", () => seen.ports().length === 2);

      await server.kill();
      const refused = new RegExp(
        `^kubernetes ${namespace}/kv: list endpointslices \\(API group discovery\\.k8s\\.io\\) ` +
          `in namespace ${namespace} failed: .*ECONNREFUSED`,
      );
      await waitFor(
        "the outage to be reported",
        () => seen.errors.some((e) => refused.test(e.message)),
        10_000,
      );
      // The last good list stays in force while the API server is away.
      const during = new Set<string>();
      for (let i = 0; i < 6; i++) during.add(answeredBy((await kv.get({ key: "k" })).value));
      assert.deepEqual([...during].sort(), ["r0", "r1"]);
      assert.deepEqual(seen.ports(), portsOf(k0, k1));

      await server.start();
      await deleteEndpointSlice(server, namespace, "kv-a");
      await waitFor("the resumed watch to drop kv-a", () => seen.ports().length === 1, 15_000);
      assert.deepEqual(seen.ports(), portsOf(k1));
      await waitFor(
        "calls to go to r1 only",
        async () => answeredBy((await kv.get({ key: "k" })).value) === "r1",
      );
    } finally {
      seen.stop();
      await client.close();
    }
  },
);

test(
  "real API server restarted between the list and the watch: its new watch cache answers 410 Gone, and the discovery lists again at once",
  { skip },
  async () => {
    const namespace = await createNamespace(server, "gone");
    const token = await serviceAccountToken(server, namespace, "host", discoveryRules);
    await putEndpointSlice(server, namespace, "kv-a", "kv", [{ ip: UNDIALED_IP, port: 8443 }]);
    // The host reaches the API server through a TCP forwarder that, like a
    // load balancer with health checks, connects only to a ready server.
    const lb = await readyForwarder(server);
    let killed: Promise<void> | undefined;
    let oldVersion = "";
    const discovery = kubernetesDiscovery({
      namespace,
      service: "kv",
      kubeConfig: server.kubeConfig({ token }, undefined, lb.url),
      rewatchDelayMs: 60_000, // so that only a 410 can explain a quick second list
    });
    const lists: Endpoint[][] = [];
    const errors: Error[] = [];
    const stop = discovery.watch(
      (list) => {
        lists.push(list);
        if (lists.length > 1) return;
        // A slow consumer: between the first list and the watch that follows
        // it, the API server dies and etcd moves on; the restarted server's
        // watch cache starts after the list's resourceVersion.
        oldVersion = etcdRevision(server);
        killed = server.kill();
      },
      (error) => errors.push(error),
    );
    try {
      await waitFor("the first list", () => killed !== undefined);
      await killed;
      await server.start();
      await waitFor("the list after 410 Gone", () => lists.length >= 2, 20_000);
      assert.deepEqual(lists[1], lists[0]);
      assert.deepEqual(errors, [], "410 Gone is routine, not an error");
      // The relisted watch follows changes.
      await putEndpointSlice(server, namespace, "kv-b", "kv", [{ ip: UNDIALED_IP, port: 8444 }]);
      await waitFor("the new watch to report kv-b", () => (lists.at(-1) ?? []).length === 2);
    } finally {
      stop();
      lb.close();
    }
    // The fault was real: the server answers a watch from before the restart
    // with a 410 Expired Status event.
    const events: { type: string; code?: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      void new Watch(server.admin)
        .watch(
          `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
          { resourceVersion: oldVersion },
          (type: string, object: { code?: number }) => events.push({ type, code: object.code }),
          () => resolve(),
        )
        .catch(reject);
    });
    assert.deepEqual(events, [{ type: "ERROR", code: 410 }]);
  },
);

/**
 * Writes a key outside Kubernetes' prefix, synchronously (in a child
 * process), so that etcd's revision moves past everything listed so far;
 * returns the revision before the write.
 */
function etcdRevision(api: KubeApiServer): string {
  const script = `
    const b64 = (s) => Buffer.from(s).toString("base64");
    const res = await fetch(${JSON.stringify(api.etcdUrl)} + "/v3/kv/put", {
      method: "POST",
      body: JSON.stringify({ key: b64("/connect-plugin-test/bump"), value: b64(String(Date.now())) }),
    });
    if (!res.ok) throw new Error("etcd put: " + res.status);
    process.stdout.write(String(Number((await res.json()).header.revision) - 1));
  `;
  return execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
  });
}

/** A loopback TCP forwarder to `api` that connects each client once the server is ready. */
async function readyForwarder(api: KubeApiServer): Promise<{ url: string; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const forwarder = net.createServer((client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    client.pause();
    void (async () => {
      while (!client.destroyed && !(await api.isReady())) {
        await new Promise((r) => setTimeout(r, 50));
      }
      if (client.destroyed) return;
      const upstream = net.connect(api.port, "127.0.0.1");
      sockets.add(upstream);
      upstream.once("close", () => sockets.delete(upstream));
      client.pipe(upstream).pipe(client);
      upstream.once("error", () => client.destroy());
      client.once("error", () => upstream.destroy());
      client.resume();
    })();
  });
  await new Promise<void>((resolve) => forwarder.listen(0, "127.0.0.1", resolve));
  const { port } = forwarder.address() as net.AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () => {
      forwarder.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}
