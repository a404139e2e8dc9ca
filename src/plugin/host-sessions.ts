import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  type Client,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  TunnelResponseSchema,
  type TunnelRequest,
  type TunnelResponse,
} from "../gen/connectplugin/v1/host_callbacks_pb.js";
import { HOST_SESSION_HEADER, isSessionId } from "../protocol/host-session.js";
import { verifiedPrincipal } from "../security/auth.js";
import type { ClientTransport } from "../transport/client-transport.js";
import { createStreamCancellingClient } from "../transport/create-client.js";
import { PairsHeaders } from "../transport/lazy-pairs-headers.js";
import { peeks } from "../transport/peek-headers.js";
import type { createFramedTransport as createFramedTransportType } from "../transport/framed/client.js";
import type { TunnelStream as TunnelStreamType } from "../transport/tunnel-stream.js";
import { pluginLog } from "./plugin-log.js";
import { signalBlind } from "../transport/signal-view.js";

/**
 * How long a callback waits for its session's tunnel when there is none:
 * not opened yet (a cluster instance just connected), or being reopened
 * after a broken connection. A host that is gone ends the call, and with it
 * the wait, at once.
 */
const TUNNEL_WAIT_MS = 5_000;
/** Sessions whose tunnel closed, remembered for the error message. */
const CLOSED_SESSIONS_KEPT = 1_024;

interface Tunnel {
  /** The identity requireBearer/requireApiKey verified for the tunnel call; undefined without auth. */
  readonly principal: string | undefined;
  readonly transport: ClientTransport;
  /** Why the tunnel closed, once it has: the error of every callback that failed with it. */
  closedWith?: ConnectError;
}

/** What a call's handler needs to call its host back: set by HostSessions.interceptor. */
interface CallbackScope {
  readonly sessions: HostSessions;
  readonly session: string;
  readonly principal: string | undefined;
}

const callbackScope = createContextKey<CallbackScope | undefined>(undefined, {
  description: "the host session of this call, for hostClient()",
});

/**
 * The plugin's side of host callbacks: the tunnels hosts have opened, by
 * session. A handler reaches only the tunnel of the session that made its
 * call, and only when that tunnel was opened by the same verified principal
 * (a remote plugin behind auth cannot be used to reach a host that never
 * called it).
 */
export class HostSessions {
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly closed = new Set<string>();
  private readonly waiters = new Map<string, Set<() => void>>();

  /**
   * Records the session and verified principal of each call that carries
   * one, for hostClient(). Runs after the auth interceptors.
   */
  readonly interceptor: Interceptor = signalBlind((next) => (req) => {
    // Headers.get validates the name each time (0.15-0.25 µs, a tenth of
    // an in-process call); a request with no header at all, the usual
    // call of a host that offers no services, is told by its first entry.
    // The framed server's lazy headers answer get() from their pairs
    // (keys() would make a Headers and load undici), the HTTP/2 lean
    // path's from node's header object (keys() would copy it, and sort it:
    // about 2 µs a call). peeks(), not instanceof IncomingHeaders: importing
    // that class loads undici, which a framed plugin never needs.
    const header = req.header;
    if (!(header instanceof PairsHeaders) && !peeks(header) && header.keys().next().done === true) {
      return next(req);
    }
    const session = header.get(HOST_SESSION_HEADER);
    if (session !== null) {
      req.contextValues.set(callbackScope, {
        sessions: this,
        session,
        principal: req.contextValues.get(verifiedPrincipal),
      });
    }
    return next(req);
  });

  /**
   * In process: the host's services are reached directly, no tunnel
   * needed. Returns the detach function.
   */
  attach(session: string, transport: ClientTransport): () => void {
    const tunnel: Tunnel = { principal: undefined, transport };
    this.register(session, tunnel);
    return () => {
      tunnel.closedWith ??= new ConnectError("the host closed its plugin client", Code.Unavailable);
      this.unregister(session, tunnel);
    };
  }

  /** The HostCallbacks/Tunnel handler: the plugin's end of a host's tunnel. */
  async *tunnel(
    requests: AsyncIterable<TunnelRequest>,
    ctx: HandlerContext,
  ): AsyncGenerator<TunnelResponse> {
    const { TunnelStream, createFramedTransport } = await loadTunnelCode();
    const session = ctx.requestHeader.get(HOST_SESSION_HEADER);
    if (!isSessionId(session)) {
      throw new ConnectError(
        `a callback tunnel needs a session id in the ${HOST_SESSION_HEADER} header ` +
          `(43 base64url characters)`,
        Code.InvalidArgument,
      );
    }
    const principal = ctx.values.get(verifiedPrincipal);
    const current = this.tunnels.get(session);
    if (current !== undefined && current.principal !== principal) {
      throw new ConnectError(
        "this session's callback tunnel belongs to another principal",
        Code.PermissionDenied,
      );
    }
    const stream = new TunnelStream();
    const transport = createFramedTransport({ stream }, { peer: "the host" });
    const tunnel: Tunnel = { principal, transport };
    const end = (why: string): void => {
      tunnel.closedWith ??= new ConnectError(
        `the host's callback tunnel closed: ${why}`,
        Code.Unavailable,
      );
      transport.close(tunnel.closedWith);
      stream.destroy();
    };
    const onAbort = (): void => end("the host went away");
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    // The tunnel code may have been loaded lazily above: an abort that came
    // meanwhile fires no event on a signal that is already aborted.
    if (ctx.signal.aborted) onAbort();
    void (async () => {
      try {
        for await (const req of requests) stream.deliver(req.data);
        end("the host closed it");
      } catch (error) {
        end(`the host went away (${ConnectError.from(error).message})`);
      }
    })();
    this.register(session, tunnel);
    try {
      // The first message says the tunnel is usable.
      yield create(TunnelResponseSchema);
      for await (const data of stream.outgoing()) yield create(TunnelResponseSchema, { data });
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      this.unregister(session, tunnel);
      end("the tunnel call ended");
    }
  }

  private register(session: string, tunnel: Tunnel): void {
    // A newer tunnel of the same session (the host reconnected) takes over;
    // calls already on the older one finish there.
    this.tunnels.set(session, tunnel);
    this.closed.delete(session);
    const waiters = this.waiters.get(session);
    this.waiters.delete(session);
    for (const wake of waiters ?? []) wake();
  }

  private unregister(session: string, tunnel: Tunnel): void {
    if (this.tunnels.get(session) !== tunnel) return;
    this.tunnels.delete(session);
    this.closed.add(session);
    if (this.closed.size > CLOSED_SESSIONS_KEPT) {
      const oldest = this.closed.values().next().value;
      if (oldest !== undefined) this.closed.delete(oldest);
    }
  }

  /** The scope's tunnel, waiting up to TUNNEL_WAIT_MS (or the call's end) for one. */
  async tunnelFor(scope: CallbackScope, signal: AbortSignal | undefined): Promise<Tunnel> {
    for (let waited = false; ; waited = true) {
      const tunnel = this.tunnels.get(scope.session);
      if (tunnel !== undefined) {
        if (tunnel.principal !== scope.principal) {
          throw new ConnectError(
            "cannot call the host back: its callback tunnel was opened by another principal " +
              "than this call's",
            Code.PermissionDenied,
          );
        }
        return tunnel;
      }
      if (waited && this.closed.has(scope.session)) {
        throw new ConnectError(
          `cannot call the host back: the host's callback tunnel closed and was not reopened ` +
            `within ${TUNNEL_WAIT_MS} ms (the host went away or closed its client)`,
          Code.Unavailable,
        );
      }
      if (waited) {
        throw new ConnectError(
          `cannot call the host back: the host opened no callback tunnel within ` +
            `${TUNNEL_WAIT_MS} ms (the tunnel needs HTTP/2 or the framed transport ` +
            `to the plugin, and a route for connectplugin.v1.HostCallbacks through any proxy)`,
          Code.Unavailable,
        );
      }
      await this.waitForTunnel(scope.session, signal);
    }
  }

  private waitForTunnel(session: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const set = this.waiters.get(session) ?? new Set<() => void>();
      this.waiters.set(session, set);
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(session) === set) this.waiters.delete(session);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = (): void => {
        done();
        reject(ConnectError.from(signal?.reason, Code.Canceled));
      };
      const timer = setTimeout(done, TUNNEL_WAIT_MS);
      set.add(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * A typed client for a service of the host that made this call, from a
 * handler's context:
 *
 * ```ts
 * async run(req, ctx) {
 *   const progress = hostClient(ctx, Progress);
 *   await progress.report({ name: req.name, step: 1, steps: req.steps });
 * }
 * ```
 *
 * Callbacks inherit the call's cancellation and what is left of its
 * deadline (a shorter timeoutMs of their own wins). They fail with
 * FailedPrecondition when the call came from a host that offers no
 * services, Unavailable when that host's tunnel is gone, and
 * PermissionDenied when the tunnel belongs to another verified principal.
 */
export function hostClient<S extends DescService>(ctx: HandlerContext, service: S): Client<S> {
  const scope = ctx.values.get(callbackScope);
  const resolve = async (signal: AbortSignal | undefined): Promise<Tunnel> => {
    if (scope === undefined) {
      throw new ConnectError(
        `cannot call the host's ${service.typeName}: the call came from a host that offers no ` +
          `services (give PluginClient hostServices), or from a host that is not a ` +
          `connect-plugin host`,
        Code.FailedPrecondition,
      );
    }
    return scope.sessions.tunnelFor(scope, signal);
  };
  let callEnded: AbortSignal | undefined;
  const inherit = (
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ): { signal: AbortSignal; timeoutMs: number | undefined } => {
    const left = ctx.timeoutMs();
    callEnded ??= hostGoneAsUnavailable(ctx.signal);
    return {
      signal: signal === undefined ? callEnded : AbortSignal.any([signal, callEnded]),
      timeoutMs:
        left === undefined
          ? timeoutMs
          : Math.max(1, timeoutMs === undefined ? left : Math.min(timeoutMs, left)),
    };
  };
  /**
   * Runs one callback on the scope's tunnel with the inherited signal and
   * deadline; when the tunnel closed under it, its error says so (whatever
   * else aborted the callback at the same moment).
   */
  const through = async <R>(
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    run: (transport: Transport, signal: AbortSignal, timeoutMs: number | undefined) => Promise<R>,
  ): Promise<{ tunnel: Tunnel; response: R }> => {
    const call = inherit(signal, timeoutMs);
    const tunnel = await resolve(call.signal);
    try {
      return {
        tunnel,
        response: await run(tunnel.transport.transport, call.signal, call.timeoutMs),
      };
    } catch (error) {
      throw tunnel.closedWith ?? error;
    }
  };
  const transport: Transport = {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const { response } = await through(signal, timeoutMs, (t, s, ms) =>
        t.unary(method, s, ms, header, input, contextValues),
      );
      return response;
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const { tunnel, response } = await through(signal, timeoutMs, (t, s, ms) =>
        t.stream(method, s, ms, header, input, contextValues),
      );
      return { ...response, message: explainStream(response.message, tunnel) };
    },
  };
  return createStreamCancellingClient(service, transport);
}

/**
 * A callback's messages; when the tunnel closed under them, the error says
 * so (whatever else aborted the callback at the same moment).
 */
async function* explainStream<T>(messages: AsyncIterable<T>, tunnel: Tunnel): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    throw tunnel.closedWith ?? error;
  }
}

/**
 * The call's signal, except that a call cut off by a broken connection
 * (Internal, Unknown: how HTTP/2 reports a reset stream) ends its callbacks
 * with Unavailable, like the tunnel going down with it: the host went away.
 * Cancellation and deadlines pass as they are.
 */
function hostGoneAsUnavailable(call: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const follow = (): void => {
    const reason = ConnectError.from(call.reason);
    controller.abort(
      reason.code === Code.Internal || reason.code === Code.Unknown
        ? new ConnectError(
            `the host went away during the call (${reason.rawMessage})`,
            Code.Unavailable,
            undefined,
            undefined,
            reason,
          )
        : call.reason,
    );
  };
  if (call.aborted) follow();
  else call.addEventListener("abort", follow, { once: true });
  return controller.signal;
}

/**
 * The tunnel's modules, loaded by the first tunnel, not at start-up: most
 * plugins never get one. When loading fails (a broken install or bundle),
 * the plugin's log has the whole error and the host learns that much, not
 * "internal error" (the paths stay in the plugin's log).
 */
async function loadTunnelCode(): Promise<{
  TunnelStream: typeof TunnelStreamType;
  createFramedTransport: typeof createFramedTransportType;
}> {
  try {
    const [stream, client] = await Promise.all([
      import("../transport/tunnel-stream.js"),
      import("../transport/framed/client.js"),
    ]);
    return {
      TunnelStream: stream.TunnelStream,
      createFramedTransport: client.createFramedTransport,
    };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    pluginLog(
      "error",
      `the plugin could not load its callback tunnel code: ${(error as Error).message}`,
    );
    throw new ConnectError(
      `the plugin could not load its callback tunnel code${code === undefined ? "" : ` (${code})`}; ` +
        `its log says why`,
      Code.Internal,
    );
  }
}
