/**
 * Kubernetes discovery against a real kube-apiserver (see kube-helpers.ts)
 * with Debian's etcd, driving a cluster of real plugin instances that run in
 * a network namespace of the test's own, joined by a veth pair (the API
 * server refuses loopback addresses in EndpointSlices): EndpointSlices added,
 * changed and removed while calls flow; RBAC refusals; in-cluster and
 * kubeconfig credentials with a limited service-account token. Restarts and
 * 410 Gone are in kubernetes-restart.test.ts, the manifests in
 * kubernetes-deploy.test.ts. Tests that only list use TEST-NET-1 addresses
 * that nothing ever dials.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cluster, kubernetesDiscovery, type Discovery } from "../src/index.js";
import { kvClient, tempDir, waitFor } from "./helpers.js";
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
} from "./kube-helpers.js";

const skip = useKubeTestBed();

test(
  "real API server: EndpointSlices added, made ready, changed and removed while a cluster serves calls; none fails",
  { skip },
  async () => {
    const { namespace, kc } = await hostNamespace("slices");
    const [k0, k1, k2, other] = await ledgers("k0", "k1", "k2", "other");
    await putEndpointSlice(server, namespace, "kv-a", "kv", [
      { ip: pods.podIp, port: k0.port, pod: "kv-0" },
    ]);
    // Another Service's slice in the same namespace: never an instance of kv.
    await putEndpointSlice(server, namespace, "other-a", "other", [
      { ip: pods.podIp, port: other.port },
    ]);
    const discovery = kubernetesDiscovery({
      namespace,
      service: "kv",
      portName: "grpc",
      kubeConfig: kc,
      rewatchDelayMs: 100,
    });
    assert.equal(discovery.description, `kubernetes ${namespace}/kv`);
    assert.deepEqual(await discovery.discover(), [
      {
        id: `${pods.podIp}:${k0.port}`,
        url: `http://${pods.podIp}:${k0.port}`,
        metadata: { slice: "kv-a", pod: "kv-0" },
      },
    ]);

    const seen = follow(discovery);
    const client = kvClient(
      cluster({ discovery, balancer: "round-robin", health: false, allowPlaintext: true }),
    );
    await client.start();
    const kv = client.dispense("kv");
    // Calls flow the whole time; every one must succeed.
    const answers: string[] = [];
    const failures: unknown[] = [];
    let calling = true;
    const caller = (async () => {
      while (calling) {
        try {
          answers.push(answeredBy((await kv.get({ key: "k" })).value));
        } catch (error) {
          failures.push(error);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    // The cluster's own watch may see a change a moment after ours: wait
    // until the last six calls (all made after `from`) went to exactly `ids`.
    const answeredSince = async (from: number, ids: string[]): Promise<void> =>
      waitFor(`calls answered by exactly ${ids.join(", ")}`, () => {
        const recent = new Set(answers.slice(Math.max(from, answers.length - 6)));
        return (
          answers.length - from >= 6 &&
          recent.size === ids.length &&
          ids.every((i) => recent.has(i))
        );
      });
    try {
      await waitFor("the watch's first list", () => seen.lists.length > 0);
      await answeredSince(0, ["k0"]);

      // Added, but not ready (a pod failing its readiness probe): not used.
      await putEndpointSlice(server, namespace, "kv-b", "kv", [
        { ip: pods.podIp, port: k1.port, ready: false },
      ]);
      // A change to the other Service must not show up either; then kv-b turns ready.
      await putEndpointSlice(server, namespace, "other-a", "other", [
        { ip: pods.podIp, port: k2.port },
      ]);
      await putEndpointSlice(server, namespace, "kv-b", "kv", [{ ip: pods.podIp, port: k1.port }]);
      await waitFor("kv-b to become ready", () => seen.ports().length === 2);
      assert.deepEqual(seen.ports(), portsOf(k0, k1));
      assert.ok(
        seen.lists.every((list) => list.every((e) => !e.url.endsWith(`:${other.port}`))),
        "another Service's instance was reported",
      );
      let mark = answers.length;
      await answeredSince(mark, ["k0", "k1"]);

      // Changed: kv-a's pod moves to k2.
      await putEndpointSlice(server, namespace, "kv-a", "kv", [{ ip: pods.podIp, port: k2.port }]);
      await waitFor("kv-a to point at k2", () => seen.ports().includes(k2.port));
      assert.deepEqual(seen.ports(), portsOf(k1, k2));
      mark = answers.length;
      await answeredSince(mark, ["k1", "k2"]);

      // Removed.
      await deleteEndpointSlice(server, namespace, "kv-b");
      await waitFor("kv-b to go", () => seen.ports().length === 1);
      assert.deepEqual(seen.ports(), portsOf(k2));
      mark = answers.length;
      await answeredSince(mark, ["k2"]);
    } finally {
      calling = false;
      await caller;
      seen.stop();
      await client.close();
    }
    assert.deepEqual(failures, []);
    assert.deepEqual(seen.errors, []);
  },
);

test(
  "real API server, RBAC: a Role without watch is refused naming the verb and resource; without list, discover() says so",
  { skip },
  async () => {
    const namespace = await createNamespace(server, "rbac");
    await putEndpointSlice(server, namespace, "kv-a", "kv", [{ ip: UNDIALED_IP, port: 8443 }]);

    const listOnly = await serviceAccountToken(server, namespace, "list-only", [
      { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list"] },
    ]);
    const discovery = kubernetesDiscovery({
      namespace,
      service: "kv",
      kubeConfig: server.kubeConfig({ token: listOnly }),
      rewatchDelayMs: 100,
    });
    // Listing is allowed, so discover() works and the watch reports the list...
    assert.equal((await discovery.discover()).length, 1);
    const seen = follow(discovery);
    try {
      await waitFor("the watch to be refused", () => seen.errors.length > 0);
      assert.equal(seen.lists[0]?.length, 1);
      // ...and then says exactly what is missing.
      assert.equal(
        seen.errors[0]?.message,
        `kubernetes ${namespace}/kv: forbidden to watch endpointslices (API group discovery.k8s.io) ` +
          `in namespace ${namespace}: the host's Role needs the verbs "list" and "watch" on "endpointslices"`,
      );
    } finally {
      seen.stop();
    }

    const nothing = await serviceAccountToken(server, namespace, "nothing", []);
    await assert.rejects(
      kubernetesDiscovery({
        namespace,
        service: "kv",
        kubeConfig: server.kubeConfig({ token: nothing }),
      }).discover(),
      {
        message:
          `kubernetes ${namespace}/kv: forbidden to list endpointslices (API group discovery.k8s.io) ` +
          `in namespace ${namespace}: the host's Role needs the verbs "list" and "watch" on "endpointslices" ` +
          `(API server: endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:${namespace}:nothing" ` +
          `cannot list resource "endpointslices" in API group "discovery.k8s.io" in the namespace "${namespace}")`,
      },
    );

    // A token the server does not know.
    await assert.rejects(
      kubernetesDiscovery({
        namespace,
        service: "kv",
        kubeConfig: server.kubeConfig({ token: "not-a-token" }),
      }).discover(),
      {
        message:
          `kubernetes ${namespace}/kv: the API server did not accept the host's credentials ` +
          `(401 Unauthorized) to list endpointslices (API group discovery.k8s.io) in namespace ${namespace}: ` +
          `an expired or revoked token?`,
      },
    );
  },
);

test(
  "credentials as in a pod: service-account token and CA files with KUBERNETES_SERVICE_HOST/PORT; and kubeconfig files, from the option and from $KUBECONFIG",
  { skip },
  async () => {
    const namespace = await createNamespace(server, "creds");
    const token = await serviceAccountToken(server, namespace, "pod", discoveryRules);
    await putEndpointSlice(server, namespace, "kv-a", "kv", [{ ip: UNDIALED_IP, port: 8443 }]);
    const expected = [`http://${UNDIALED_IP}:8443`];
    const urls = async (d: Discovery): Promise<string[]> => (await d.discover()).map((e) => e.url);

    // The files a pod gets at /var/run/secrets/kubernetes.io/serviceaccount.
    const serviceAccountDir = join(tempDir("cp-sa-"), "serviceaccount");
    mkdirSync(serviceAccountDir);
    writeFileSync(join(serviceAccountDir, "token"), token);
    writeFileSync(join(serviceAccountDir, "ca.crt"), readFileSync(server.caFile));
    writeFileSync(join(serviceAccountDir, "namespace"), namespace);
    const saved = { ...process.env };
    const restoreEnv = (): void => {
      for (const key of ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG"]) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    };
    try {
      delete process.env.KUBERNETES_SERVICE_HOST;
      delete process.env.KUBERNETES_SERVICE_PORT;
      const inCluster = kubernetesDiscovery({
        namespace,
        service: "kv",
        kubeConfig: { serviceAccountDir },
      });
      await assert.rejects(inCluster.discover(), {
        message:
          "in-cluster Kubernetes credentials need KUBERNETES_SERVICE_HOST and " +
          "KUBERNETES_SERVICE_PORT (the kubelet sets both in every pod)",
      });
      process.env.KUBERNETES_SERVICE_HOST = "127.0.0.1";
      process.env.KUBERNETES_SERVICE_PORT = String(server.port);
      // The same discovery works once the variables are there (setup is retried).
      assert.deepEqual(await urls(inCluster), expected);

      const missing = join(serviceAccountDir, "..", "nowhere");
      await assert.rejects(
        kubernetesDiscovery({
          namespace,
          service: "kv",
          kubeConfig: { serviceAccountDir: missing },
        }).discover(),
        {
          message:
            `in-cluster Kubernetes credentials: no service-account token at ${join(missing, "token")} ` +
            "(is automountServiceAccountToken off, or the token projected elsewhere?)",
        },
      );

      // A kubeconfig file with the same limited token.
      const kubeconfigFile = server.writeKubeconfig({ token }, namespace);
      assert.deepEqual(
        await urls(
          kubernetesDiscovery({ namespace, service: "kv", kubeConfig: { kubeconfigFile } }),
        ),
        expected,
      );
      // No option: $KUBECONFIG, as kubectl would.
      process.env.KUBECONFIG = kubeconfigFile;
      assert.deepEqual(await urls(kubernetesDiscovery({ namespace, service: "kv" })), expected);

      // The limited token reaches nothing else: not another namespace's slices.
      const elsewhere = await createNamespace(server, "creds-other");
      await assert.rejects(
        kubernetesDiscovery({ namespace: elsewhere, service: "kv" }).discover(),
        /forbidden to list endpointslices \(API group discovery\.k8s\.io\) in namespace creds-other/,
      );
    } finally {
      restoreEnv();
    }
  },
);
