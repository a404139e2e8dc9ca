/**
 * A real Kubernetes API server for tests: kube-apiserver (built from the Go
 * module proxy by scripts/build-kube-apiserver.sh and cached) on a free
 * loopback port, backed by Debian's etcd on another, with a private PKI made
 * by openssl: a serving certificate, client-certificate and static-token
 * authentication, service-account signing keys and RBAC. There is no
 * controller manager: nothing creates EndpointSlices or service-account
 * tokens on its own, so tests create slices and request tokens themselves.
 *
 * One server serves a whole test file; each test takes a fresh namespace
 * (a deleted namespace stays Terminating without a controller manager).
 */
import { after, before } from "node:test";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Discovery, Endpoint } from "../src/index.js";
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1EndpointSlice,
  type V1PolicyRule,
} from "@kubernetes/client-node";
import { freePort } from "../chaos/suite.js";
import { etcdHealthy, makeTestPki, servingUrl, tempDir, waitFor } from "./helpers.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** The cached kube-apiserver binary, built on first use (about 3 minutes). */
export function kubeApiServerBinary(): string {
  const out = execFileSync("bash", [join(repoRoot, "scripts/build-kube-apiserver.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return out.trim().split("\n").at(-1) ?? "";
}

/** A user in a kubeconfig: a bearer token, or a client certificate. */
export type KubeUser = { token: string } | { certFile: string; keyFile: string };

export interface KubeApiServer {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** etcd's client URL (http, loopback). */
  readonly etcdUrl: string;
  /** The CA that signed the serving certificate (also the client CA). */
  readonly caFile: string;
  /** A cluster admin (group system:masters), by client certificate. */
  readonly admin: KubeConfig;
  /** The admin's kubeconfig file, for kubectl. */
  readonly adminKubeconfig: string;
  /** A static token of a user in system:masters (--token-auth-file). */
  readonly adminToken: string;
  /** A KubeConfig for this server (or `url`, a way to it) as `user`. */
  kubeConfig(user: KubeUser, namespace?: string, url?: string): KubeConfig;
  /** True when /readyz answers 200. */
  isReady(): Promise<boolean>;
  /**
   * Writes a kubeconfig file by hand (Debian's kubectl 1.20 cannot
   * `config set-credentials` against this server) and returns its path.
   */
  writeKubeconfig(user: KubeUser, namespace?: string): string;
  /** Runs kubectl against this server as the admin. */
  kubectl(
    args: readonly string[],
    input?: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Kills kube-apiserver only (etcd keeps running); `start()` brings it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeApiServerOptions {
  /** More kube-apiserver flags, e.g. ["--watch-cache=false"]. */
  readonly extraArgs?: readonly string[];
}

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

async function killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  await exited;
}

/** GET `url` over https trusting only `ca`; resolves with the status (0 when unreachable). */
function httpsStatus(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
  });
}

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: "ignore" });
}

/**
 * A certificate and key for `name` signed by the test CA in `dir` (made by
 * makeTestPki), with the given openssl extensions.
 */
export function issueCert(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
): { certFile: string; keyFile: string } {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions}\n`);
  openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    csr,
    "-subj",
    subject,
  );
  openssl(
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    join(dir, "ca.crt"),
    "-CAkey",
    join(dir, "ca.key"),
    "-CAcreateserial",
    "-out",
    certFile,
    "-days",
    "2",
    "-extfile",
    ext,
  );
  return { certFile, keyFile };
}

async function startEtcd(dir: string): Promise<{ url: string; child: ChildProcess }> {
  for (let attempt = 0; ; attempt++) {
    const [port, peerPort] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${port}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const child = track(
      spawn(
        "/usr/bin/etcd",
        [
          "--name=m",
          `--data-dir=${join(dir, `etcd-${attempt}`)}`,
          `--listen-client-urls=${url}`,
          `--advertise-client-urls=${url}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=m=${peer}`,
        ],
        { stdio: "ignore" },
      ),
    );
    try {
      await waitFor(
        `etcd on ${url} to be healthy`,
        async () => {
          if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}`);
          return etcdHealthy(url);
        },
        30_000,
      );
      return { url, child };
    } catch (error) {
      await killChild(child, "SIGKILL");
      // Another process may have taken a port between freePort() and etcd's bind.
      if (attempt >= 3) throw error;
    }
  }
}

/**
 * Starts etcd and kube-apiserver on free loopback ports; resolves once
 * /readyz answers 200. Builds the binary first if it is not cached.
 */
export async function startKubeApiServer(
  options: KubeApiServerOptions = {},
): Promise<KubeApiServer> {
  const binary = kubeApiServerBinary();
  const dir = makeTestPki("cp-kube-");
  const file = (name: string): string => join(dir, name);
  const caFile = file("ca.crt");
  const ca = readFileSync(caFile);
  const adminCert = issueCert(
    dir,
    "test-admin",
    "/O=system:masters/CN=test-admin",
    "extendedKeyUsage=clientAuth",
  );
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", file("sa.key"));
  openssl("ec", "-in", file("sa.key"), "-pubout", "-out", file("sa.pub"));
  const adminToken = `admin-${Math.random().toString(36).slice(2)}`;
  writeFileSync(file("tokens.csv"), `${adminToken},token-admin,token-admin,system:masters\n`);

  const etcd = await startEtcd(dir);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const args = [
    `--etcd-servers=${etcd.url}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${port}`,
    `--cert-dir=${file("apiserver-certs")}`,
    `--tls-cert-file=${file("server.crt")}`,
    `--tls-private-key-file=${file("server.key")}`,
    `--client-ca-file=${caFile}`,
    `--token-auth-file=${file("tokens.csv")}`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${file("sa.pub")}`,
    `--service-account-signing-key-file=${file("sa.key")}`,
    "--authorization-mode=RBAC",
    // No controller manager keeps the kubernetes Service's endpoints, and
    // the reconciler would publish this machine's address.
    "--endpoint-reconciler-type=none",
    "--service-cluster-ip-range=10.96.0.0/24",
    "--profiling=false",
    ...(options.extraArgs ?? []),
  ];
  const log = file("kube-apiserver.log");
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const fd = openSync(log, "a");
    const proc = track(spawn(binary, args, { stdio: ["ignore", fd, fd] }));
    closeSync(fd);
    child = proc;
    const logTail = (): string => readFileSync(log, "utf8").split("\n").slice(-15).join("\n");
    await waitFor(
      `kube-apiserver on ${url} to be ready`,
      async () => {
        if (proc.exitCode !== null) {
          throw new Error(`kube-apiserver exited with ${proc.exitCode}:\n${logTail()}`);
        }
        return (await httpsStatus(`${url}/readyz`, ca)) === 200;
      },
      90_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${logTail()}`);
    });
  };
  const kill = async (): Promise<void> => {
    if (child !== undefined) await killChild(child, "SIGKILL");
  };

  const kubeConfig = (user: KubeUser, namespace?: string, server = url): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "test", server, caFile }],
      users: [
        "token" in user
          ? { name: "user", token: user.token }
          : { name: "user", certFile: user.certFile, keyFile: user.keyFile },
      ],
      contexts: [{ name: "test", cluster: "test", user: "user", namespace }],
      currentContext: "test",
    });
    return kc;
  };
  let kubeconfigs = 0;
  const writeKubeconfig = (user: KubeUser, namespace?: string): string => {
    const path = file(`kubeconfig-${++kubeconfigs}`);
    const credentials =
      "token" in user
        ? `    token: ${user.token}`
        : `    client-certificate: ${user.certFile}\n    client-key: ${user.keyFile}`;
    writeFileSync(
      path,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: test",
        "  cluster:",
        `    server: ${url}`,
        `    certificate-authority: ${caFile}`,
        "users:",
        "- name: user",
        "  user:",
        credentials,
        "contexts:",
        "- name: test",
        "  context:",
        "    cluster: test",
        "    user: user",
        ...(namespace !== undefined ? [`    namespace: ${namespace}`] : []),
        "current-context: test",
        "",
      ].join("\n"),
    );
    return path;
  };
  const adminKubeconfig = writeKubeconfig(adminCert);

  await start();
  return {
    url,
    port,
    etcdUrl: etcd.url,
    caFile,
    admin: kubeConfig(adminCert),
    adminKubeconfig,
    adminToken,
    kubeConfig,
    isReady: async () => (await httpsStatus(`${url}/readyz`, ca)) === 200,
    writeKubeconfig,
    kubectl: (kubectlArgs, input) =>
      new Promise((resolve, reject) => {
        const proc = spawn("kubectl", ["--kubeconfig", adminKubeconfig, ...kubectlArgs], {
          stdio: ["pipe", "pipe", "pipe"],
          // No ~/.kube cache shared with other runs.
          env: { ...process.env, KUBECACHEDIR: file("kube-cache"), HOME: dir },
        });
        let stdout = "";
        let stderr = "";
        proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
        proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        proc.once("error", reject);
        proc.once("close", (code) => resolve({ code, stdout, stderr }));
        proc.stdin.end(input ?? "");
      }),
    kill,
    start,
    stop: async () => {
      await kill();
      await killChild(etcd.child, "SIGKILL");
    },
  };
}

let namespaces = 0;

/** Creates a namespace with a name unique to this run. */
export async function createNamespace(server: KubeApiServer, prefix: string): Promise<string> {
  const name = `${prefix}-${process.pid}-${++namespaces}`;
  await server.admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * A ServiceAccount in `namespace` bound by a Role with `rules`, and a token
 * for it from the TokenRequest API (valid one hour): the credentials a pod
 * running as that ServiceAccount gets.
 */
export async function serviceAccountToken(
  server: KubeApiServer,
  namespace: string,
  name: string,
  rules: V1PolicyRule[],
): Promise<string> {
  const core = server.admin.makeApiClient(CoreV1Api);
  const rbac = server.admin.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    },
  });
  return tokenFor(server, namespace, name);
}

/** A token for an existing ServiceAccount, from the TokenRequest API. */
export async function tokenFor(
  server: KubeApiServer,
  namespace: string,
  name: string,
): Promise<string> {
  const core = server.admin.makeApiClient(CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = res.status?.token;
  if (token === undefined) throw new Error(`no token issued for ${namespace}/${name}`);
  return token;
}

/** The Role rules Kubernetes discovery needs (see deploy/kubernetes/discovery-rbac.yaml). */
export const discoveryRules: V1PolicyRule[] = [
  { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
];

export interface SliceEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly ready?: boolean;
  readonly pod?: string;
}

/**
 * Creates or replaces the EndpointSlice `name` of `service`, as the
 * EndpointSlice controller would (one port, named `portName`). All
 * endpoints of one slice share its port.
 */
export async function putEndpointSlice(
  server: KubeApiServer,
  namespace: string,
  name: string,
  service: string,
  endpoints: readonly SliceEndpoint[],
  portName = "grpc",
): Promise<V1EndpointSlice> {
  const api = server.admin.makeApiClient(DiscoveryV1Api);
  const body: V1EndpointSlice = {
    metadata: { name, namespace, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports: [{ name: portName, port: endpoints[0]?.port ?? 0, protocol: "TCP" }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true },
      ...(e.pod !== undefined && { targetRef: { kind: "Pod", name: e.pod, namespace } }),
    })),
  };
  try {
    const current = await api.readNamespacedEndpointSlice({ namespace, name });
    return await api.replaceNamespacedEndpointSlice({
      namespace,
      name,
      body: {
        ...body,
        metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion },
      },
    });
  } catch (error) {
    if ((error as { code?: number }).code !== 404) throw error;
    return api.createNamespacedEndpointSlice({ namespace, body });
  }
}

export async function deleteEndpointSlice(
  server: KubeApiServer,
  namespace: string,
  name: string,
): Promise<void> {
  await server.admin
    .makeApiClient(DiscoveryV1Api)
    .deleteNamespacedEndpointSlice({ namespace, name });
}

/**
 * "Pod IPs" for EndpointSlices: the API server refuses loopback addresses
 * in them, and tests send traffic only to loopback or to network namespaces
 * they create. So plugin instances run in a fresh network namespace joined
 * to this one by a veth pair on a random /30 of 10.213.0.0/16: the host
 * side is `hostIp`, the instances listen on `podIp`. Needs root.
 */
export interface PodNetwork {
  readonly namespace: string;
  readonly podIp: string;
  /** Starts `node main` inside the namespace; resolves with its "plugin serving" URL. */
  startNode(main: string, env: Record<string, string>): Promise<PodProcess>;
  remove(): void;
}

export interface PodProcess {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

const networks = new Set<string>();
process.once("exit", () => {
  for (const name of networks) spawnSyncQuiet("ip", ["netns", "delete", name]);
});

function spawnSyncQuiet(command: string, args: string[]): void {
  try {
    execFileSync(command, args, { stdio: "ignore" });
  } catch {
    // cleanup of something already gone
  }
}

/** Why pod networks cannot be made here, or undefined when they can. */
export function podNetworkUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
  } catch {
    return "the ip command (iproute2) is missing";
  }
  return undefined;
}

export function createPodNetwork(): PodNetwork {
  const id = `${process.pid % 100000}${Math.floor(Math.random() * 100)}`;
  const namespace = `cpk8s-${id}`;
  const [hostIf, podIf] = [`cpk${id}h`, `cpk${id}p`];
  const inUse = execFileSync("ip", ["-o", "-4", "addr"], { encoding: "utf8" });
  let prefix = "";
  do {
    const block = Math.floor(Math.random() * 16_384) * 4;
    prefix = `10.213.${block >> 8}.${block & 255}`;
  } while (inUse.includes(` ${prefix.slice(0, prefix.lastIndexOf("."))}.`));
  const base = prefix.split(".").map(Number) as [number, number, number, number];
  const hostIp = `${base[0]}.${base[1]}.${base[2]}.${base[3] + 1}`;
  const podIp = `${base[0]}.${base[1]}.${base[2]}.${base[3] + 2}`;
  const ip = (...args: string[]): void => {
    execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
  };
  ip("netns", "add", namespace);
  networks.add(namespace);
  ip("link", "add", hostIf, "type", "veth", "peer", "name", podIf);
  ip("link", "set", podIf, "netns", namespace);
  ip("addr", "add", `${hostIp}/30`, "dev", hostIf);
  ip("link", "set", hostIf, "up");
  ip("-n", namespace, "addr", "add", `${podIp}/30`, "dev", podIf);
  ip("-n", namespace, "link", "set", podIf, "up");
  ip("-n", namespace, "link", "set", "lo", "up");
  const processes = new Set<ChildProcess>();
  return {
    namespace,
    podIp,
    startNode: async (main, env) => {
      const child = spawn("ip", ["netns", "exec", namespace, process.execPath, main], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "ignore", "pipe"],
      });
      track(child);
      processes.add(child);
      const url = await servingUrl(child, main);
      return {
        url,
        port: Number(new URL(url).port),
        stop: () => killChild(child, "SIGTERM"),
      };
    },
    remove: () => {
      for (const child of processes) child.kill("SIGKILL");
      // Deleting the namespace deletes the veth pair, both ends.
      spawnSyncQuiet("ip", ["netns", "delete", namespace]);
      networks.delete(namespace);
    },
  };
}

// ---------------------------------------------------------------- one test file's bed

/** The test file's API server and pod network, set by useKubeTestBed()'s `before` hook. */
export let server: KubeApiServer;
export let pods: PodNetwork;

/**
 * Registers hooks that start one API server and one pod network for the
 * calling test file and stop them after it. Returns why they cannot run
 * here (pass it as the tests' `skip`), or undefined.
 */
export function useKubeTestBed(options: KubeApiServerOptions = {}): string | undefined {
  const skip = podNetworkUnavailable();
  // A cold build of kube-apiserver takes minutes; CI builds it in setup-test-deps.sh.
  before(
    async () => {
      if (skip !== undefined) return;
      pods = createPodNetwork();
      server = await startKubeApiServer(options);
    },
    { timeout: 600_000 },
  );
  after(async () => {
    await server?.stop();
    pods?.remove();
  });
  return skip;
}

/** Nothing listens there, and nothing dials it: for tests that only list. */
export const UNDIALED_IP = "192.0.2.10";

const ledgerMain = fileURLToPath(new URL("../chaos/ledger-plugin.js", import.meta.url));
const ledgerDir = tempDir("cp-k8s-ledgers-");

/** Ledger plugin instances in the pod network, each on its own port of the pod IP. */
export async function ledgers<T extends string[]>(
  ...ids: T
): Promise<{ [K in keyof T]: PodProcess }> {
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
export function follow(discovery: Discovery): {
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

export const portsOf = (...xs: PodProcess[]): number[] =>
  xs.map((x) => x.port).sort((a, b) => a - b);

/** A namespace with a host ServiceAccount allowed to list and watch EndpointSlices. */
export async function hostNamespace(
  prefix: string,
): Promise<{ namespace: string; kc: KubeConfig }> {
  const namespace = await createNamespace(server, prefix);
  const token = await serviceAccountToken(server, namespace, "host", discoveryRules);
  return { namespace, kc: server.kubeConfig({ token }) };
}
