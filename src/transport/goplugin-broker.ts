import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { ConnInfoSchema, type ConnInfo } from "../gen/plugin/grpc_broker_pb.js";
import type { ClientTransport } from "./client-transport.js";
import type { PeerTls } from "./goplugin-dial.js";
import { PluginHttpServer } from "./http-server.js";
import type { ListenTarget } from "./listen.js";
import { createPrivateSocket } from "./socket-dir.js";

/** go-plugin's broker waits 5 seconds for the peer's connection info. */
export const BROKER_DIAL_TIMEOUT_MS = 5_000;

type Waiter = { resolve: (info: ConnInfo) => void; reject: (error: Error) => void };

/** A service that a {@link GrpcBroker} serves for the peer to dial. */
export interface BrokeredService {
  readonly id: number;
  /** Stops serving and removes the socket. */
  close(): Promise<void>;
}

/**
 * go-plugin's GRPCBroker, for either side of a go-plugin connection.
 *
 * A go-plugin connection carries one long-lived bidirectional stream,
 * `plugin.GRPCBroker/StartStream`, over which each side tells the other
 * where it serves extra services: a `ConnInfo{service_id, network,
 * address}` per service. That is how a Terraform-style plugin calls back
 * into its host (the host serves a helper and passes its id in a request),
 * and how a host reaches services a plugin starts on demand.
 *
 * - `acceptAndServe(id, routes)` serves `routes` on a fresh private unix
 *   socket (over TLS with the AutoMTLS certificates, when on) and sends its
 *   address to the peer under `id`.
 * - `dial(id)` waits up to 5 s for the peer's address under `id` and returns
 *   a gRPC transport to it.
 *
 * Ids are agreed out of band (usually a field in a request), so `nextId()`
 * only hands out numbers that this side has not used. go-plugin's optional
 * multiplexing (PLUGIN_MULTIPLEX_GRPC, with its "knock" messages) is not
 * supported: a knock is answered with an error, so the peer fails clearly
 * instead of waiting.
 */
export class GrpcBroker {
  private lastId = 0;
  private readonly queue: ConnInfo[] = [];
  private wake: (() => void) | undefined;
  /** Announcements no dial has claimed yet, dropped after the dial timeout as go-plugin does. */
  private readonly received = new Map<number, { info: ConnInfo; expiry: NodeJS.Timeout }>();
  /** Pending dials by id; one announcement answers every dial of its id. */
  private readonly waiters = new Map<number, Set<Waiter>>();
  private readonly services = new Set<BrokeredService>();
  private closed = false;

  constructor(
    private readonly options: {
      readonly tls?: PeerTls;
      /** Where brokered sockets are made (PLUGIN_UNIX_SOCKET_DIR or the temp dir). */
      readonly socketDir?: string;
    } = {},
  ) {}

  /** A service id that this side has not handed out yet. */
  nextId(): number {
    this.lastId += 1;
    return this.lastId;
  }

  /**
   * Serves `routes` for the peer, which reaches them with `dial(id)`. The
   * socket stays open until the returned service, or the broker, is closed.
   * `interceptors` run on every call the peer makes (serverObservability()).
   */
  async acceptAndServe(
    id: number,
    routes: (router: ConnectRouter) => void,
    options: { readonly interceptors?: readonly Interceptor[] } = {},
  ): Promise<BrokeredService> {
    if (this.closed) throw new Error("the go-plugin broker is closed");
    const socket = createPrivateSocket(this.options.socketDir || undefined);
    const target: ListenTarget = socket
      ? { network: "unix", path: socket.path }
      : { network: "tcp", host: "127.0.0.1", port: 0 };
    const tls = this.options.tls;
    // The HTTP adapter is loaded on first use: every launched plugin makes a
    // broker, and most never use it (see serve.ts on cold start).
    const { createNodeAdapter } = await import("./node-adapter.js");
    const adapter = createNodeAdapter({ routes, interceptors: [...(options.interceptors ?? [])] });
    const http = await PluginHttpServer.listen(adapter, target, {
      acceptHttp1: false,
      streams: adapter.claimStream,
      ...(tls !== undefined && {
        tls: { cert: tls.certPem, key: tls.keyPem, clientCert: tls.peerCertPem },
      }),
    });
    if (this.closed) {
      // close() ran while we were listening: it could not see this server.
      await http.close(0);
      socket?.remove();
      throw new Error("the go-plugin broker is closed");
    }
    const service: BrokeredService = {
      id,
      close: async () => {
        this.services.delete(service);
        await http.close(1_000);
        socket?.remove();
      },
    };
    this.services.add(service);
    this.send(
      create(ConnInfoSchema, {
        serviceId: id,
        network: http.bound.network,
        address: http.bound.address,
      }),
    );
    return service;
  }

  /**
   * Waits for the peer to announce service `id` and returns a gRPC
   * transport to it. Rejects after `timeoutMs` with go-plugin's message.
   * `interceptors` run on every call through it (clientObservability()).
   */
  async dial(
    id: number,
    timeoutMs = BROKER_DIAL_TIMEOUT_MS,
    options: { readonly interceptors?: readonly Interceptor[] } = {},
  ): Promise<ClientTransport> {
    const info = await this.waitFor(id, timeoutMs);
    if (info.network !== "unix" && info.network !== "tcp") {
      throw new Error(`unknown address type: ${info.address}`);
    }
    const { createGoPluginTransport } = await import("./goplugin-dial.js");
    return createGoPluginTransport(
      { network: info.network, address: info.address },
      {
        interceptors: [...(options.interceptors ?? [])],
        ...(this.options.tls !== undefined && { tls: this.options.tls }),
      },
    );
  }

  /**
   * The messages this side sends on the StartStream stream. Ends when the
   * broker is closed or `signal` aborts.
   */
  async *outbound(signal?: AbortSignal): AsyncGenerator<ConnInfo> {
    const onAbort = (): void => this.wake?.();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.closed || signal?.aborted) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Reads the peer's messages from the StartStream stream until it ends. */
  async consume(inbound: AsyncIterable<ConnInfo>): Promise<void> {
    try {
      for await (const info of inbound) this.receive(info);
    } catch {
      // The stream breaks when either side goes away; dials then time out.
    }
  }

  /** Stops every brokered service and ends the stream. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    for (const [id, waiters] of this.waiters) {
      for (const w of waiters) {
        w.reject(
          new Error(
            `the go-plugin broker closed while dialing service ${id}; it was never announced`,
          ),
        );
      }
    }
    this.waiters.clear();
    for (const { expiry } of this.received.values()) clearTimeout(expiry);
    this.received.clear();
    await Promise.all([...this.services].map((s) => s.close()));
  }

  private receive(info: ConnInfo): void {
    if (info.knock !== undefined) {
      if (info.knock.knock && !info.knock.ack) {
        this.send(
          create(ConnInfoSchema, {
            serviceId: info.serviceId,
            knock: {
              knock: true,
              ack: true,
              error:
                "connect-plugin does not support go-plugin's gRPC multiplexing (PLUGIN_MULTIPLEX_GRPC)",
            },
          }),
        );
      }
      return;
    }
    const waiters = this.waiters.get(info.serviceId);
    if (waiters !== undefined) {
      this.waiters.delete(info.serviceId);
      for (const w of waiters) w.resolve(info);
      return;
    }
    if (this.closed) return;
    const id = info.serviceId;
    clearTimeout(this.received.get(id)?.expiry);
    const expiry = setTimeout(() => this.received.delete(id), BROKER_DIAL_TIMEOUT_MS);
    expiry.unref();
    this.received.set(id, { info, expiry });
  }

  private waitFor(id: number, timeoutMs: number): Promise<ConnInfo> {
    if (this.closed) return Promise.reject(new Error("the go-plugin broker is closed"));
    const ready = this.received.get(id);
    if (ready !== undefined) {
      clearTimeout(ready.expiry);
      this.received.delete(id);
      return Promise.resolve(ready.info);
    }
    return new Promise<ConnInfo>((resolve, reject) => {
      let waiters = this.waiters.get(id);
      if (waiters === undefined) this.waiters.set(id, (waiters = new Set()));
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        if (waiters.size === 0 && this.waiters.get(id) === waiters) this.waiters.delete(id);
        reject(new Error(`timeout waiting for connection info (go-plugin broker service ${id})`));
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: (info) => {
          clearTimeout(timer);
          resolve(info);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      waiters.add(waiter);
    });
  }

  private send(info: ConnInfo): void {
    this.queue.push(info);
    this.wake?.();
  }
}
