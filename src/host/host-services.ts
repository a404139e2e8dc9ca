import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type ConnectRouter,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
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
import { signalBlind, withHeader } from "../transport/signal-view.js";

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
  /** Resolves once the tunnel call has ended. */
  readonly ended: Promise<void>;
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
  private readonly routes: (router: ConnectRouter) => void;
  /** Aborts every host service handler still running when the client closes. */
  private readonly closing = new AbortController();
  private readonly kept = new Set<TunnelKeeper>();
  private readonly detach: Array<() => void> = [];

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
  readonly interceptor: Interceptor = signalBlind((next) => (req) => {
    const header = new Headers(req.header);
    header.set(HOST_SESSION_HEADER, this.session);
    return next(withHeader(req, header));
  });

  /**
   * Gives an in-process plugin the host's services directly: `attach` is
   * the plugin's HostSessions.attach, whose detach runs on close().
   */
  attachDirect(attach: (session: string, transport: ClientTransport) => () => void): void {
    this.detach.push(attach(this.session, this.direct()));
  }

  private direct(): ClientTransport {
    return createDirectTransport({
      routes: this.routes,
      routerOptions: { interceptors: [], shutdownSignal: this.closing.signal },
    });
  }

  /** Opens a tunnel over `transport` (one connection to the plugin) and keeps it open. */
  keep(transport: Transport, where: string): KeptTunnel {
    const kept = new TunnelKeeper(transport, where, {
      routes: this.routes,
      closing: this.closing.signal,
      log: (level, message, fields) => this.log(level, message, fields),
      stopped: (k) => this.kept.delete(k),
    });
    this.kept.add(kept);
    return kept;
  }

  /**
   * Ends every tunnel and every host service call still running. Resolves
   * once the tunnel calls have ended (at most a second), so that the plugin
   * learns of it before the host's other calls are cut.
   */
  async close(): Promise<void> {
    this.closing.abort(new ConnectError("the host closed its plugin client", Code.Unavailable));
    for (const detach of this.detach.splice(0)) detach();
    const kept = [...this.kept];
    for (const k of kept) k.stop();
    await Promise.race([
      Promise.all(kept.map((k) => k.ended)),
      new Promise((resolve) => setTimeout(resolve, 1_000).unref()),
    ]);
  }

  private log(level: "debug" | "warn", message: string, fields: Record<string, unknown>): void {
    this.logger.log(hostRecord(this.plugin, level, message, fields));
  }
}

/** What a TunnelKeeper uses of its session. */
interface KeeperParts {
  readonly routes: (router: ConnectRouter) => void;
  readonly closing: AbortSignal;
  readonly log: (level: "debug" | "warn", message: string, fields: Record<string, unknown>) => void;
  readonly stopped: (keeper: TunnelKeeper) => void;
}

/**
 * One tunnel over one connection: opens the Tunnel call, serves the host's
 * services on it with the framed protocol, and reopens it (after 100 ms,
 * doubling to 5 s) when it breaks, until stopped.
 */
class TunnelKeeper implements KeptTunnel {
  readonly ready: Promise<void>;
  readonly ended: Promise<void>;
  private settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  private isStopped = false;
  private current: { stream: TunnelStream; abort: AbortController } | undefined;

  constructor(
    transport: Transport,
    private readonly where: string,
    private readonly parts: KeeperParts,
  ) {
    this.ready = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // A start that does not wait for it must not see an unhandled rejection.
    this.ready.catch(() => {});
    this.ended = this.run(createClient(HostCallbacks, transport));
  }

  stop(): void {
    this.isStopped = true;
    this.parts.stopped(this);
    this.settle?.resolve();
    this.current?.abort.abort(new ConnectError("the host closed its client", Code.Canceled));
    this.current?.stream.destroy();
  }

  private async run(tunnels: Client<typeof HostCallbacks>): Promise<void> {
    let pause = REOPEN_FIRST_MS;
    while (!this.isStopped) {
      const stream = new TunnelStream();
      const abort = new AbortController();
      this.current = { stream, abort };
      serveFramedStream(this.parts.routes, stream, {
        peer: "the plugin",
        self: "this host",
        shutdownSignal: this.parts.closing,
      });
      let opened = false;
      let failure: ConnectError | undefined;
      try {
        const responses = tunnels.tunnel(requestsOf(stream), { signal: abort.signal });
        for await (const res of responses) {
          if (!opened) {
            opened = true;
            pause = REOPEN_FIRST_MS;
            this.settle?.resolve();
            continue;
          }
          stream.deliver(res.data);
        }
      } catch (error) {
        failure = ConnectError.from(error);
      }
      stream.destroy();
      if (this.isStopped) return;
      if (!opened && failure?.code === Code.Unimplemented) {
        this.parts.log(
          "warn",
          "the plugin does not serve host callbacks; it cannot call this host",
          {
            where: this.where,
            error: failure.message,
          },
        );
        this.settle?.resolve();
        return;
      }
      if (!opened && failure !== undefined) {
        this.settle?.reject(
          new ConnectError(
            `could not open the callback tunnel to ${this.where}: ${failure.rawMessage}`,
            failure.code,
            undefined,
            undefined,
            failure,
          ),
        );
      }
      this.parts.log("debug", "callback tunnel closed; reopening", {
        where: this.where,
        ...(failure !== undefined && { error: failure.message }),
        in_ms: pause,
      });
      await new Promise((resolve) => setTimeout(resolve, pause).unref());
      pause = Math.min(pause * 2, REOPEN_MAX_MS);
    }
  }
}

/** The bytes the host's framed server writes, as the tunnel's request messages. */
async function* requestsOf(stream: TunnelStream): AsyncGenerator<TunnelRequest> {
  for await (const data of stream.outgoing()) yield create(TunnelRequestSchema, { data });
}
