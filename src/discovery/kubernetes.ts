import type * as K8sModule from "@kubernetes/client-node";
import type { KubeConfig, V1EndpointSlice } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { isIPv6 } from "node:net";
import { join } from "node:path";
import { sortEndpoints, type Discovery, type Endpoint } from "./discovery.js";

export interface KubernetesDiscoveryOptions {
  readonly namespace: string;
  /** The Service whose EndpointSlices list the instances. */
  readonly service: string;
  /** The port's name in the slices; default: the first port. */
  readonly portName?: string;
  /** Default "http". */
  readonly scheme?: "http" | "https";
  /**
   * Where the API server is, and as whom the host asks:
   * - omitted: KubeConfig.loadFromDefault() of @kubernetes/client-node, that
   *   is $KUBECONFIG, else ~/.kube/config, else the pod's service account;
   * - a `KubeConfig` built by the caller;
   * - `{ kubeconfigFile }`: a kubeconfig file (its current context);
   * - `{ serviceAccountDir }`: in-cluster credentials: `token` and `ca.crt`
   *   from that directory (in a pod, /var/run/secrets/kubernetes.io/serviceaccount,
   *   or where a projected token is mounted), the server from
   *   KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT. The token file is
   *   read again every minute, so a token the kubelet rotates keeps working.
   */
  readonly kubeConfig?: KubeConfigLike | { readonly kubeconfigFile: string } | InClusterCredentials;
  /** Wait before listing again after a watch ends or fails. Default 1,000 ms. */
  readonly rewatchDelayMs?: number;
}

/**
 * A `KubeConfig` from @kubernetes/client-node. Typed by shape, not imported,
 * so that the published types do not need that optional package in an app
 * that does not use Kubernetes discovery.
 */
export interface KubeConfigLike {
  getCurrentCluster(): unknown;
  makeApiClient(...args: never[]): unknown;
}

/** A pod's service-account credentials, as files (see KubernetesDiscoveryOptions.kubeConfig). */
export interface InClusterCredentials {
  /** Holds `token` and `ca.crt`; in a pod: /var/run/secrets/kubernetes.io/serviceaccount. */
  readonly serviceAccountDir: string;
}

/**
 * @kubernetes/client-node is big and optional: it is imported on first use,
 * so that hosts without Kubernetes discovery neither need it nor load it.
 */
async function loadClient(): Promise<typeof K8sModule> {
  try {
    return await import("@kubernetes/client-node");
  } catch (error) {
    throw new Error(
      "Kubernetes discovery needs the @kubernetes/client-node package: npm install @kubernetes/client-node@1",
      { cause: error },
    );
  }
}

/**
 * Instances from the discovery.k8s.io/v1 EndpointSlices of a Service, by
 * list + watch: the list gives the state and a resourceVersion, the watch
 * streams every change after it. Only endpoints whose `ready` condition is
 * not false are used: Kubernetes clears it when a pod fails its readiness
 * probe or starts terminating. When the watch ends (the API server closes
 * watches every few minutes, or restarts) or fails, it lists again after
 * `rewatchDelayMs` and resumes; when the API server says the watch's
 * resourceVersion is too old (410 Gone), it lists again at once.
 *
 * The host needs `list` and `watch` on `endpointslices` (API group
 * discovery.k8s.io) in the namespace; a refusal names the missing verb.
 */
export function kubernetesDiscovery(options: KubernetesDiscoveryOptions): Discovery {
  const { namespace, service } = options;
  const description = `kubernetes ${namespace}/${service}`;
  const labelSelector = `kubernetes.io/service-name=${service}`;
  const path = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
  let client: Promise<{ k8s: typeof K8sModule; kc: KubeConfig }> | undefined;
  const setup = (): Promise<{ k8s: typeof K8sModule; kc: KubeConfig }> => {
    client ??= (async () => {
      const k8s = await loadClient();
      return { k8s, kc: loadKubeConfig(k8s, options.kubeConfig) };
    })();
    // A failed setup (a missing file, say) is tried again on the next list.
    client.catch(() => (client = undefined));
    return client;
  };
  const failure = (verb: "list" | "watch", error: unknown): Error =>
    explainFailure(description, namespace, verb, error);
  const list = async (): Promise<{ slices: Map<string, V1EndpointSlice>; version: string }> => {
    const { k8s, kc } = await setup();
    const api = kc.makeApiClient(k8s.DiscoveryV1Api);
    let res: K8sModule.V1EndpointSliceList;
    try {
      res = await api.listNamespacedEndpointSlice({ namespace, labelSelector });
    } catch (error) {
      throw failure("list", error);
    }
    const slices = new Map<string, V1EndpointSlice>();
    for (const slice of res.items) slices.set(slice.metadata?.name ?? "", slice);
    return { slices, version: res.metadata?.resourceVersion ?? "" };
  };
  const toEndpoints = (slices: Map<string, V1EndpointSlice>): Endpoint[] =>
    sortEndpoints([...slices.values()].flatMap((slice) => sliceEndpoints(slice, options)));
  return {
    description,
    async discover() {
      return toEndpoints((await list()).slices);
    },
    watch(onChange, onError) {
      let stopped = false;
      let abort: AbortController | undefined;
      let timer: NodeJS.Timeout | undefined;
      const again = (delayMs = options.rewatchDelayMs ?? 1_000): void => {
        if (stopped) return;
        clearTimeout(timer);
        timer = setTimeout(() => void run(), delayMs);
      };
      const fail = (error: Error): void => {
        if (!stopped) onError?.(error);
      };
      const run = async (): Promise<void> => {
        try {
          const { k8s, kc } = await setup();
          const { slices, version } = await list();
          if (stopped) return;
          onChange(toEndpoints(slices));
          let expired = false;
          const watch = new k8s.Watch(kc);
          abort = await watch.watch(
            path,
            { labelSelector, resourceVersion: version, allowWatchBookmarks: true },
            (phase: string, object: V1EndpointSlice | K8sModule.V1Status) => {
              if (phase === "ERROR") {
                const status = object as K8sModule.V1Status;
                // 410 Gone: the resourceVersion is older than the server
                // keeps; only a new list can resume. Anything else is news.
                if (status.code === 410) expired = true;
                else fail(new Error(`${description}: the watch failed: ${statusText(status)}`));
                return;
              }
              const slice = object as V1EndpointSlice;
              const name = slice.metadata?.name ?? "";
              if (phase === "ADDED" || phase === "MODIFIED") slices.set(name, slice);
              else if (phase === "DELETED") slices.delete(name);
              else return; // BOOKMARK
              onChange(toEndpoints(slices));
            },
            (error: unknown) => {
              if (stopped) return;
              // A 410 may also come as the watch request's HTTP status.
              if ((error as { statusCode?: unknown } | null)?.statusCode === 410) expired = true;
              else if (error !== null && error !== undefined) fail(failure("watch", error));
              again(expired ? 0 : undefined);
            },
          );
          if (stopped) abort.abort();
        } catch (error) {
          fail(error instanceof Error ? error : new Error(String(error)));
          again();
        }
      };
      void run();
      return () => {
        stopped = true;
        clearTimeout(timer);
        abort?.abort();
      };
    },
  };
}

function loadKubeConfig(
  k8s: typeof K8sModule,
  given: KubernetesDiscoveryOptions["kubeConfig"],
): KubeConfig {
  const kc = new k8s.KubeConfig();
  if (given === undefined) {
    kc.loadFromDefault();
  } else if ("kubeconfigFile" in given) {
    kc.loadFromFile(given.kubeconfigFile);
  } else if (!("serviceAccountDir" in given)) {
    // Any object of this shape that a user passes is a KubeConfig.
    return given as KubeConfig;
  } else {
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) {
      throw new Error(
        "in-cluster Kubernetes credentials need KUBERNETES_SERVICE_HOST and " +
          "KUBERNETES_SERVICE_PORT (the kubelet sets both in every pod)",
      );
    }
    const tokenFile = join(given.serviceAccountDir, "token");
    const caFile = join(given.serviceAccountDir, "ca.crt");
    for (const [what, file] of [
      ["service-account token", tokenFile],
      ["cluster CA certificate", caFile],
    ] as const) {
      if (!existsSync(file)) {
        throw new Error(
          `in-cluster Kubernetes credentials: no ${what} at ${file} ` +
            "(is automountServiceAccountToken off, or the token projected elsewhere?)",
        );
      }
    }
    kc.loadFromClusterAndUser(
      {
        name: "in-cluster",
        server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
        caFile,
        skipTLSVerify: false,
      },
      // The client's tokenFile provider re-reads the file every minute.
      { name: "service-account", authProvider: { name: "tokenFile", config: { tokenFile } } },
    );
  }
  return kc;
}

/**
 * A refusal names the verb, the resource and the fix; other failures keep
 * the API server's own message (an ApiException's message holds the whole
 * response, headers included).
 */
function explainFailure(
  description: string,
  namespace: string,
  verb: "list" | "watch",
  error: unknown,
): Error {
  const e = error as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown };
  const code =
    typeof e.code === "number" ? e.code : typeof e.statusCode === "number" ? e.statusCode : 0;
  const serverMessage = statusMessage(e.body);
  const resource = `endpointslices (API group discovery.k8s.io) in namespace ${namespace}`;
  let message: string;
  if (code === 403) {
    message =
      `forbidden to ${verb} ${resource}: the host's Role needs the verbs ` +
      `"list" and "watch" on "endpointslices"` +
      (serverMessage !== undefined ? ` (API server: ${serverMessage})` : "");
  } else if (code === 401) {
    message =
      `the API server did not accept the host's credentials (401 Unauthorized) ` +
      `to ${verb} ${resource}: an expired or revoked token?`;
  } else if (code !== 0) {
    message = `${verb} ${resource} failed with HTTP ${code}: ${serverMessage ?? String(e.message)}`;
  } else {
    message = `${verb} ${resource} failed: ${error instanceof Error ? error.message : String(error)}`;
  }
  return new Error(`${description}: ${message}`, { cause: error });
}

/** The `message` of a Kubernetes Status, as an object or as JSON text. */
function statusMessage(body: unknown): string | undefined {
  let status = body;
  if (typeof body === "string") {
    try {
      status = JSON.parse(body);
    } catch {
      return body === "" ? undefined : body;
    }
  }
  const message = (status as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message : undefined;
}

function statusText(status: K8sModule.V1Status): string {
  return `${status.code ?? "?"} ${status.reason ?? ""}: ${status.message ?? ""}`;
}

function sliceEndpoints(slice: V1EndpointSlice, options: KubernetesDiscoveryOptions): Endpoint[] {
  const ports = slice.ports ?? [];
  const port =
    options.portName === undefined ? ports[0] : ports.find((p) => p.name === options.portName);
  if (port?.port === undefined) return [];
  const scheme = options.scheme ?? "http";
  const out: Endpoint[] = [];
  for (const ep of slice.endpoints) {
    if (ep.conditions?.ready === false) continue;
    for (const address of ep.addresses) {
      const host = address.includes(":") ? `[${address}]` : address;
      out.push({
        id: `${address}:${port.port}`,
        url: `${scheme}://${host}:${port.port}`,
        metadata: {
          slice: slice.metadata?.name ?? "",
          ...(ep.targetRef?.name !== undefined && { pod: ep.targetRef.name }),
          ...(ep.zone !== undefined && { zone: ep.zone }),
        },
      });
    }
  }
  return out;
}
