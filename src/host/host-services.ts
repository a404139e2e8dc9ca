import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  HostCallbacks,
  TunnelRequestSchema,
  type TunnelRequest,
} from "../gen/connectplugin/v1/host_callbacks_pb.js";
import { hostRecord, type Logger } from "../logging/logger.js";
import { HOST_SESSION_HEADER } from "../protocol/host-session.js";
import type { PluginImplementation } from "../protocol/plugin-set.js";
import type { ClientTransport } from "../transport/client-transport.js";
import { createDirectTransport } from "../transport/direct.js";
import { serveFramedStream } from "../transport/framed/server.js";
import { TunnelStream } from "../transport/tunnel-stream.js";

/** Pause before reopening a tunnel that failed: doubles from the first to the last. */
const REOPEN_FIRST_MS = 100;
const REOPEN_MAX_MS = 5_000;

/** One kept tunnel: ready once the plugin has registered it the first time. */
export interface KeptTunnel {
  /**
   * Resolves when the plugin has the tunnel, or when it turned out not to
   * serve HostCallbacks (logged); rejects with the first failure otherwise.
   */
  readonly ready: Promise<void>;
  /** Closes the tunnel and stops reopening it. */
  stop(): void;
}

/**
 * The host's side of callbacks (docs/callbacks.md): the services the host
 * offers its plugins, and one session for one PluginClient. Over every
 * connection to the plugin the host opens a HostCallbacks/Tunnel call,
 * serves its services on it with the framed protocol, and reopens it when it
 * breaks while the client runs. In process, the plugin reaches the services
 * directly. Every call the client makes names the session, so the plugin can
 * tell which host called.
 */
export class HostServiceSession {
  /** The session id: a 256-bit secret, known only to this host and its plugin. */
  readonly session = randomBytes(32).toString("base64url");
  private readonly routes: (router: Parameters<PluginImplementation["register"]>[0]) => void;
  /** Aborts every host service handler still running when the client closes. */
  private readonly closing = new AbortController();
  private readonly kept = new Set<KeptTunnel>();

  constructor(
    services: readonly PluginImplementation[],
    private readonly logger: Logger,
    private readonly plugin: string,
  ) {
    this.routes = (router) => {
      for (const service of services) service.register(router);
    };
    setMaxListeners(0, this.closing.signal);
  }

  /** Names the session on every call to the plugin (added after the user's interceptors). */
  readonly interceptor: Interceptor = (next) => (req) => {
    const header = new Headers(req.header);
    header.set(HOST_SESSION_HEADER, this.session);
    return next({ ...req, header });
  };

  /** The host's services as a transport in this process, for an in-process plugin. */
  direct(): ClientTransport {
    return createDirectTransport({
      routes: this.routes,
      routerOptions: { interceptors: [], shutdownSignal: this.closing.signal },
    });
  }

  /** Opens a tunnel over `transport` (one connection to the plugin) and keeps it open. */
  keep(transport: Transport, where: string): KeptTunnel {
    let stopped = false;
    let current: { stream: TunnelStream; abort: AbortController } | undefined;
    let settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
    const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    // A start that does not wait for it must not see an unhandled rejection.
    ready.catch(() => {});
    const kept: KeptTunnel = {
      ready,
      stop: () => {
        stopped = true;
        this.kept.delete(kept);
        settle?.resolve();
        current?.abort.abort(new ConnectError("the host closed its client", Code.Canceled));
        current?.stream.destroy();
      },
    };
    this.kept.add(kept);
    const tunnels = createClient(HostCallbacks, transport);
    void (async () => {
      let pause = REOPEN_FIRST_MS;
      while (!stopped) {
        const stream = new TunnelStream();
        const abort = new AbortController();
        current = { stream, abort };
        serveFramedStream(this.routes, stream, {
          peer: "the plugin",
          self: "this host",
          shutdownSignal: this.closing.signal,
        });
        let opened = false;
        let failure: ConnectError | undefined;
        try {
          const responses = tunnels.tunnel(requestsOf(stream), { signal: abort.signal });
          for await (const res of responses) {
            if (!opened) {
              opened = true;
              pause = REOPEN_FIRST_MS;
              settle?.resolve();
              continue;
            }
            stream.deliver(res.data);
          }
        } catch (error) {
          failure = ConnectError.from(error);
        }
        stream.destroy();
        if (stopped) return;
        if (!opened && failure?.code === Code.Unimplemented) {
          this.log("warn", "the plugin does not serve host callbacks; it cannot call this host", {
            where,
            error: failure.message,
          });
          settle?.resolve();
          return;
        }
        if (!opened && failure !== undefined) {
          settle?.reject(
            new ConnectError(
              `could not open the callback tunnel to ${where}: ${failure.rawMessage}`,
              failure.code,
              undefined,
              undefined,
              failure,
            ),
          );
        }
        this.log("debug", "callback tunnel closed; reopening", {
          where,
          ...(failure !== undefined && { error: failure.message }),
          in_ms: pause,
        });
        await new Promise((resolve) => setTimeout(resolve, pause).unref());
        pause = Math.min(pause * 2, REOPEN_MAX_MS);
      }
    })();
    return kept;
  }

  /** Ends every tunnel and every host service call still running. */
  close(): void {
    this.closing.abort(new ConnectError("the host closed its plugin client", Code.Unavailable));
    for (const kept of [...this.kept]) kept.stop();
  }

  private log(level: "debug" | "warn", message: string, fields: Record<string, unknown>): void {
    this.logger.log(hostRecord(this.plugin, level, message, fields));
  }
}

/** The bytes the host's framed server writes, as the tunnel's request messages. */
async function* requestsOf(stream: TunnelStream): AsyncGenerator<TunnelRequest> {
  for await (const data of stream.outgoing()) yield create(TunnelRequestSchema, { data });
}
