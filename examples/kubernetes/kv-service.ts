/**
 * The KV plugin as a Kubernetes workload (deploy/kubernetes/, docs/kubernetes.md),
 * and the entrypoint of the plugin image (deploy/container/Containerfile).
 *
 * - serve() in network mode: CONNECT_PLUGIN_LISTEN ("0.0.0.0:8443"), TLS
 *   from CONNECT_PLUGIN_TLS_CERT_FILE / _KEY_FILE (a mounted Secret).
 * - PROBE_LISTEN ("0.0.0.0:8081"): grpc.health.v1 over plaintext HTTP/2 for
 *   the kubelet's native gRPC probes, which speak neither TLS nor anything
 *   but h2c (Kubernetes 1.31 has no TLS mode for them). It serves nothing
 *   else: each Check is asked of the plugin server itself, over its real
 *   port and TLS, so a probe fails when the plugin's own server does, and
 *   readiness turns NOT_SERVING while the plugin shuts down. The same port
 *   lets a sidecar that listens on 127.0.0.1 be probed from the pod's IP.
 */
import * as http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { serve } from "../../src/plugin.js";
import { Health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { kvPlugin } from "../kv/definition.js";

const handle = await serve(kvPlugin());

const probeListen = process.env.PROBE_LISTEN;
if (probeListen) {
  const plugin = createClient(
    Health,
    createGrpcTransport({
      baseUrl: handle.url,
      // Loopback to this very process: the certificate names the Service,
      // not 127.0.0.1, and the only thing asked is the health status.
      nodeOptions: { rejectUnauthorized: false },
    }),
  );
  // "HOST:PORT" or ":PORT" (all interfaces), as CONNECT_PLUGIN_LISTEN.
  const match = /^(.*):(\d+)$/.exec(probeListen);
  if (match === null)
    throw new Error(`PROBE_LISTEN must be HOST:PORT or :PORT, not ${probeListen}`);
  const probes = http2.createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(Health, {
          check: (req, ctx) => plugin.check(req, { signal: ctx.signal, timeoutMs: 1_000 }),
          // eslint-disable-next-line require-yield
          async *watch() {
            throw new ConnectError("probes use Check", Code.Unimplemented);
          },
        }),
    }),
  );
  probes.listen(Number(match[2]), match[1] || "0.0.0.0");
  void handle.done.then(() => probes.close());
}
