/**
 * deploy/kubernetes against a real kube-apiserver (see kube-helpers.ts):
 * every manifest under `kubectl apply --dry-run=server`, then the host's RBAC
 * and the plugin Service applied for real, kv-service instances started with
 * the Deployment's environment in the test's pod network, probed as the
 * kubelet does, discovered as the manifests' ServiceAccount and called over TLS.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parseAllDocuments, stringify } from "yaml";
import { cluster, kubernetesDiscovery } from "../src/index.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { kvClient, makeTestPki, tempDir, waitFor } from "./helpers.js";
import {
  createNamespace,
  issueCert,
  putEndpointSlice,
  useKubeTestBed,
  server,
  pods,
  tokenFor,
} from "./kube-helpers.js";

const skip = useKubeTestBed();

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
