import type * as K8sModule from "@kubernetes/client-node";
import type { KubeConfig, V1EndpointSlice } from "@kubernetes/client-node";
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
   * Where the API server is. Default: the in-cluster service account when
   * running in a pod, else ~/.kube/config (KubeConfig.loadFromDefault).
   */
  readonly kubeConfig?: KubeConfigLike;
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
 * watches every few minutes) or fails, it lists again and resumes.
 */
export function kubernetesDiscovery(options: KubernetesDiscoveryOptions): Discovery {
  const labelSelector = `kubernetes.io/service-name=${options.service}`;
  const path = `/apis/discovery.k8s.io/v1/namespaces/${options.namespace}/endpointslices`;
  const setup = async (): Promise<{
    k8s: typeof K8sModule;
    kc: KubeConfig;
  }> => {
    const k8s = await loadClient();
    // Any object of this shape that a user passes is a KubeConfig.
    let kc = options.kubeConfig as KubeConfig | undefined;
    if (kc === undefined) {
      kc = new k8s.KubeConfig();
      kc.loadFromDefault();
    }
    return { k8s, kc };
  };
  const list = async (): Promise<{ slices: Map<string, V1EndpointSlice>; version: string }> => {
    const { k8s, kc } = await setup();
    const api = kc.makeApiClient(k8s.DiscoveryV1Api);
    const res = await api.listNamespacedEndpointSlice({
      namespace: options.namespace,
      labelSelector,
    });
    const slices = new Map<string, V1EndpointSlice>();
    for (const slice of res.items) slices.set(slice.metadata?.name ?? "", slice);
    return { slices, version: res.metadata?.resourceVersion ?? "" };
  };
  const toEndpoints = (slices: Map<string, V1EndpointSlice>): Endpoint[] =>
    sortEndpoints([...slices.values()].flatMap((slice) => sliceEndpoints(slice, options)));
  return {
    description: `kubernetes ${options.namespace}/${options.service}`,
    async discover() {
      return toEndpoints((await list()).slices);
    },
    watch(onChange, onError) {
      let stopped = false;
      let abort: AbortController | undefined;
      let timer: NodeJS.Timeout | undefined;
      const again = (): void => {
        if (stopped) return;
        timer = setTimeout(() => void run(), options.rewatchDelayMs ?? 1_000);
      };
      const fail = (error: unknown): void => {
        if (!stopped) onError?.(error instanceof Error ? error : new Error(String(error)));
      };
      const run = async (): Promise<void> => {
        try {
          const { k8s, kc } = await setup();
          const { slices, version } = await list();
          if (stopped) return;
          onChange(toEndpoints(slices));
          const watch = new k8s.Watch(kc);
          abort = await watch.watch(
            path,
            { labelSelector, resourceVersion: version, allowWatchBookmarks: true },
            (phase: string, object: V1EndpointSlice) => {
              const name = object.metadata?.name ?? "";
              if (phase === "ADDED" || phase === "MODIFIED") slices.set(name, object);
              else if (phase === "DELETED") slices.delete(name);
              else return; // BOOKMARK, ERROR (a 410 Gone ends the watch; we list again)
              onChange(toEndpoints(slices));
            },
            (error: unknown) => {
              if (error !== null && error !== undefined) fail(error);
              again();
            },
          );
          if (stopped) abort.abort();
        } catch (error) {
          fail(error);
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
