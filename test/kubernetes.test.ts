/**
 * Kubernetes discovery against a real kube-apiserver (see kube-helpers.ts)
 * with Debian's etcd, driving a cluster of real plugin instances: they run
 * in a network namespace of the test's own, joined by a veth pair, because
 * the API server refuses loopback addresses in EndpointSlices ("pod IPs").
 * EndpointSlices added, changed and removed while calls flow; the
 * API server restarted mid-watch; a watch too old for the server (410 Gone)
 * relisted; RBAC refusals; in-cluster and kubeconfig credentials with a
 * limited service-account token; the deploy/kubernetes manifests. One API
 * server and one pod network serve the file; each test has its own
 * Kubernetes namespace. Tests that only list (no calls) use addresses of
 * TEST-NET-1 (192.0.2.0/24) that nothing ever dials.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Watch, type KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { cluster, kubernetesDiscovery, type Discovery, type Endpoint } from "../src/index.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { kvClient, makeTestPki, tempDir, waitFor } from "./helpers.js";
import { answeredBy } from "./cluster-helpers.js";
import {
  createNamespace,
  createPodNetwork,
  deleteEndpointSlice,
  discoveryRules,
  issueCert,
  podNetworkUnavailable,
  putEndpointSlice,
  serviceAccountToken,
  startKubeApiServer,
  tokenFor,
  type KubeApiServer,
  type PodNetwork,
  type PodProcess,
} from "./kube-helpers.js";

let server: KubeApiServer;
let pods: PodNetwork;
const skip = podNetworkUnavailable();
// A cold build of kube-apiserver takes minutes; CI builds it in setup-test-deps.sh.
before(
  async () => {
    if (skip !== undefined) return;
    pods = createPodNetwork();
    server = await startKubeApiServer();
  },
  { timeout: 600_000 },
);
after(async () => {
  await server?.stop();
  pods?.remove();
});

/** Nothing listens there, and nothing dials it: for tests that only list. */
const UNDIALED_IP = "192.0.2.10";

const ledgerMain = fileURLToPath(new URL("../chaos/ledger-plugin.js", import.meta.url));
const ledgerDir = tempDir("cp-k8s-ledgers-");

/** Ledger plugin instances in the pod network, each on its own port of the pod IP. */
async function ledgers<T extends string[]>(...ids: T): Promise<{ [K in keyof T]: PodProcess }> {
  const started = await Promise.all(
    ids.map((id) =>
      pods.startNode(ledgerMain, {
        CONNECT_PLUGIN_LISTEN: `${pods.podIp}:0`,
        LEDGER_FILE: join(ledgerDir, `${id}.log`),
        INSTANCE_ID: id,
      }),
    ),
  );
  return started as { [K in keyof T]: PodProcess };
}

/** Every list a watch reported, and every error. */
function follow(discovery: Discovery): {
  lists: Endpoint[][];
  errors: Error[];
  ports: () => number[];
  stop: () => void;
} {
  const lists: Endpoint[][] = [];
  const errors: Error[] = [];
  const stop = discovery.watch(
    (list) => lists.push(list),
    (error) => errors.push(error),
  );
  const ports = (): number[] =>
    (lists.at(-1) ?? []).map((e) => Number(new URL(e.url).port)).sort((a, b) => a - b);
  return { lists, errors, ports, stop };
}

const portsOf = (...xs: PodProcess[]): number[] => xs.map((x) => x.port).sort((a, b) => a - b);

/** A namespace with a host ServiceAccount allowed to list and watch EndpointSlices. */
async function hostNamespace(prefix: string): Promise<{ namespace: string; kc: KubeConfig }> {
  const namespace = await createNamespace(server, prefix);
  const token = await serviceAccountToken(server, namespace, "host", discoveryRules);
  return { namespace, kc: server.kubeConfig({ token }) };
}

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

// ---------------------------------------------------------------- deploy/kubernetes

const deployDir = fileURLToPath(new URL("../../deploy/kubernetes/", import.meta.url));

/** The manifests of one file, placed in `namespace` (what kustomize's `namespace:` does). */
function manifests(file: string, namespace: string): KubeObject[] {
  return parseAllDocuments(readFileSync(join(deployDir, file), "utf8")).map((doc) => {
    const object = doc.toJS() as KubeObject;
    object.metadata.namespace = namespace;
    for (const subject of object.subjects ?? []) subject.namespace = namespace;
    return object;
  });
}

interface KubeObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  subjects?: { namespace?: string }[];
  spec?: Record<string, unknown>;
}

const toYaml = (objects: KubeObject[]): string => objects.map((o) => stringify(o)).join("---\n");

test(
  "deploy/kubernetes: every manifest passes `kubectl apply --dry-run=server` against the real API server, and a broken one does not",
  { skip },
  async () => {
    const namespace = await createNamespace(server, "dryrun");
    const files = readdirSync(deployDir).filter(
      (f) => f.endsWith(".yaml") && f !== "kustomization.yaml",
    );
    const kustomization = readFileSync(join(deployDir, "kustomization.yaml"), "utf8");
    for (const file of files) {
      assert.ok(kustomization.includes(`- ${file}`), `kustomization.yaml does not list ${file}`);
      const objects = manifests(file, namespace);
      const res = await server.kubectl(["apply", "--dry-run=server", "-f", "-"], toYaml(objects));
      assert.equal(res.code, 0, `${file}: ${res.stderr}`);
      for (const o of objects) {
        assert.match(
          res.stdout,
          new RegExp(`/${o.metadata.name} created \\(server dry run\\)`),
          `${file}: ${res.stdout}`,
        );
      }
    }
    // Nothing was created.
    const got = await server.kubectl([
      "get",
      "deployments,services,roles",
      "-n",
      namespace,
      "-o",
      "name",
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, "");

    // The server validates what no client-side schema can: a Deployment
    // whose selector does not match its pods' labels is refused.
    const broken = manifests("plugin-service.yaml", namespace);
    if (broken[0]?.spec !== undefined) {
      broken[0].spec.selector = { matchLabels: { "app.kubernetes.io/name": "something-else" } };
    }
    const res = await server.kubectl(["apply", "--dry-run=server", "-f", "-"], toYaml(broken));
    assert.notEqual(res.code, 0);
    assert.match(
      res.stderr,
      /spec\.template\.metadata\.labels: Invalid value: .*`selector` does not match template `labels`/,
    );
  },
);

test(
  "deploy/kubernetes: the host's Role and the plugin Service as the manifests describe them; kv-service instances with the Deployment's environment serve TLS and gRPC probes; discovery finds them",
  { skip },
  async () => {
    const namespace = await createNamespace(server, "deploy");
    // The RBAC and the Service, applied for real (no controller acts on the Deployment).
    for (const file of ["discovery-rbac.yaml", "plugin-service.yaml"]) {
      const res = await server.kubectl(["apply", "-f", "-"], toYaml(manifests(file, namespace)));
      assert.equal(res.code, 0, `${file}: ${res.stderr}`);
    }
    const [deployment, svc] = manifests("plugin-service.yaml", namespace) as [
      KubeObject & { spec: DeploymentSpec },
      KubeObject & { spec: { ports: { name: string }[] } },
    ];
    const container = deployment.spec.template.spec.containers[0]!;
    const mount = container.volumeMounts[0]!;
    const portName = svc.spec.ports[0]!.name;
    assert.equal(portName, "grpc");
    const host = manifests("host.yaml", namespace)[0] as KubeObject & { spec: DeploymentSpec };
    const serviceAccount = host.spec.template.spec.serviceAccountName ?? "";
    assert.equal(serviceAccount, "kv-host");

    // The Secret's files, where the Deployment mounts them; the instances
    // run with the container's environment (loopback addresses instead of 0.0.0.0).
    // The certificate names the pod IP, as discovery hands out pod IPs.
    const pki = makeTestPki("cp-deploy-tls-");
    const served = issueCert(
      pki,
      "kv-plugin",
      "/CN=kv-plugin",
      `subjectAltName=IP:${pods.podIp}\nextendedKeyUsage=serverAuth`,
    );
    const secretDir = tempDir("cp-secret-");
    writeFileSync(join(secretDir, "tls.crt"), readFileSync(served.certFile));
    writeFileSync(join(secretDir, "tls.key"), readFileSync(served.keyFile));
    // Two "pods" share the test's pod network, so each gets its own ports.
    const instances = await Promise.all(
      [0, 1].map(async (i) => {
        const probePort = 8081 + i;
        const env: Record<string, string> = {};
        for (const { name, value } of container.env) {
          env[name] = value
            .replace(mount.mountPath, secretDir)
            .replace("0.0.0.0:8443", `${pods.podIp}:0`)
            .replace("0.0.0.0:8081", `${pods.podIp}:${probePort}`);
        }
        const pod = await pods.startNode(kvServiceMain, env);
        return { ...pod, probePort };
      }),
    );
    try {
      for (const pod of instances) {
        assert.equal(pod.url, `https://${pods.podIp}:${pod.port}`);
        // What the kubelet's gRPC probe does: Check over h2c, no TLS, service "".
        const probe = createClient(
          Health,
          createGrpcTransport({ baseUrl: `http://${pods.podIp}:${pod.probePort}` }),
        );
        await waitFor("the probe port", async () => {
          try {
            return (await probe.check({})).status === HealthCheckResponse_ServingStatus.SERVING;
          } catch {
            return false;
          }
        });
      }
      // What the EndpointSlice controller would publish for two ready pods.
      for (const [i, pod] of instances.entries()) {
        await putEndpointSlice(
          server,
          namespace,
          `${svc.metadata.name}-${i}`,
          svc.metadata.name,
          [{ ip: pods.podIp, port: pod.port, pod: `kv-plugin-${i}` }],
          portName,
        );
      }
      const token = await tokenFor(server, namespace, serviceAccount);
      const discovery = kubernetesDiscovery({
        namespace,
        service: svc.metadata.name,
        portName,
        scheme: "https",
        kubeConfig: server.kubeConfig({ token }),
      });
      assert.deepEqual(
        (await discovery.discover()).map((e) => e.url),
        instances.map((p) => p.url).sort(),
      );
      const client = kvClient(
        cluster({
          discovery,
          tls: { ca: readFileSync(join(pki, "ca.crt")) },
          balancer: "round-robin",
        }),
      );
      await client.start();
      try {
        const kv = client.dispense("kv");
        // Over TLS, verified against the CA that signed the Secret's certificate.
        const keys = ["k0", "k1", "k2", "k3"];
        for (const key of keys) await kv.put({ key, value: new TextEncoder().encode(`v-${key}`) });
        // Strict round-robin: get i goes to the instance that took put i.
        for (const key of keys) {
          assert.equal(new TextDecoder().decode((await kv.get({ key })).value), `v-${key}`);
        }
      } finally {
        await client.close();
      }
      // The host's ServiceAccount can do nothing else: not even read the Service.
      const denied = await server.kubectl([
        "auth",
        "can-i",
        "get",
        "services",
        "-n",
        namespace,
        `--as=system:serviceaccount:${namespace}:${serviceAccount}`,
      ]);
      assert.equal(denied.stdout.trim(), "no");
    } finally {
      await Promise.all(instances.map((p) => p.stop()));
    }
  },
);

interface DeploymentSpec {
  template: {
    spec: {
      serviceAccountName?: string;
      containers: {
        env: { name: string; value: string }[];
        volumeMounts: { mountPath: string }[];
      }[];
    };
  };
}

const kvServiceMain = fileURLToPath(
  new URL("../examples/kubernetes/kv-service.js", import.meta.url),
);
