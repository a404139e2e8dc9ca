import { setMaxListeners } from "node:events";
import type {
  DescMessage,
  DescMethod,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Discovery, Endpoint } from "../discovery/discovery.js";
import {
  createUrlTransport,
  type ClientTransport,
  type RpcProtocol,
} from "../transport/client-transport.js";
import { balancerByName, type Balancer, type BalancerName } from "./balancer.js";
import {
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
} from "./circuit-breaker.js";
import { HealthMonitor, type HealthOptions } from "./health-monitor.js";
import { NotSentError, RetryPolicy, neverSent, type RetryOptions } from "./retry.js";

/** TLS for the connections to every instance, as PEM. */
export interface ClusterTls {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/**
 * Options for a {@link ClusterTransport}: where the instances come from and
 * how calls are spread over them and protected from their failures. Every
 * part has defaults; `false` turns retries, circuit breaking or health
 * checks off.
 */
export interface ClusterOptions {
  readonly discovery: Discovery;
  /** Default "least-outstanding". */
  readonly balancer?: BalancerName | Balancer;
  readonly retry?: RetryOptions | false;
  readonly circuitBreaker?: CircuitBreakerOptions | false;
  readonly health?: HealthOptions | false;
  /**
   * Deadline for calls made without one. Default 30,000 ms: a call through a
   * cluster always has a deadline, because a partitioned instance would
   * otherwise hold it forever.
   */
  readonly defaultTimeoutMs?: number;
  /**
   * Time one attempt may take, within the call's deadline, so that an
   * idempotent call stuck on a partitioned instance still has time to fail
   * over. Only idempotent calls are cut short this way: a call that will
   * not be retried gets the whole deadline. Default: the whole deadline.
   */
  readonly attemptTimeoutMs?: number;
  /** Default "connect". */
  readonly protocol?: RpcProtocol;
  readonly tls?: ClusterTls;
  /** Needed for http:// endpoints that are not loopback addresses. */
  readonly allowPlaintext?: boolean;
  /** Run on every call to every instance (auth, tracing). */
  readonly interceptors?: readonly Interceptor[];
  readonly readMaxBytes?: number;
  readonly writeMaxBytes?: number;
  /**
   * Where calls go when no instance can take them (or all attempts failed in
   * a way that allows another try): another plugin's transport, or an
   * in-process implementation. A non-idempotent call that may have reached
   * an instance never falls back, since it might then run twice.
   */
  readonly fallback?: Transport;
  /** Told about endpoint, health and circuit changes. */
  readonly onEvent?: (event: ClusterEvent) => void;
}

export type ClusterEvent =
  | { readonly type: "endpoints"; readonly ids: readonly string[] }
  | { readonly type: "healthy" | "unhealthy"; readonly id: string; readonly reason?: string }
  | { readonly type: "circuit"; readonly id: string; readonly state: CircuitState }
  /** A call failed on one attempt and is tried again; `method` is "Service/Method". */
  | { readonly type: "retry"; readonly method: string; readonly attempt: number }
  /** A call that could have been retried was not: the retry budget is spent. */
  | { readonly type: "retry-refused"; readonly method: string }
  | { readonly type: "discovery-error"; readonly message: string };

/** What the cluster knows about one instance, for diagnostics and tests. */
export interface EndpointStatus {
  readonly id: string;
  readonly url: string;
  readonly healthy: boolean;
  readonly circuit: CircuitState;
  readonly outstanding: number;
}

/** A connection to an instance with its calls in flight; retired ones close once idle. */
class Connection {
  outstanding = 0;
  retired = false;
  /** A break of this connection has been reported to the breaker. */
  countedBreak = false;
  constructor(readonly client: ClientTransport) {}
  release(): void {
    this.outstanding--;
    if (this.retired && this.outstanding === 0) this.client.close();
  }
  retire(): void {
    this.retired = true;
    if (this.outstanding === 0) this.client.close();
  }
}

class EndpointState {
  removed = false;
  connection: Connection;
  readonly breaker: CircuitBreaker | undefined;
  health: HealthMonitor | undefined;
  constructor(
    readonly endpoint: Endpoint,
    private readonly connect: () => ClientTransport,
    breaker: CircuitBreakerOptions | false | undefined,
  ) {
    this.connection = new Connection(connect());
    this.breaker = breaker === false ? undefined : new CircuitBreaker(breaker);
  }
  get id(): string {
    return this.endpoint.id;
  }
  get outstanding(): number {
    return this.connection.outstanding;
  }
  get healthy(): boolean {
    return this.health?.healthy ?? true;
  }
  /**
   * Starts a fresh connection for new calls; the old one finishes its calls
   * and closes. Used when the instance looked dead, so that the next calls
   * do not queue on a connection that a partition left hanging.
   */
  reconnect(): void {
    if (this.removed) return;
    const old = this.connection;
    this.connection = new Connection(this.connect());
    old.retire();
  }
  remove(): void {
    this.removed = true;
    this.health?.stop();
    this.connection.retire();
  }
}

const HARD_DEADLINE_MARGIN_MS = 50;

/**
 * A Connect transport over a pool of plugin instances. Per call it picks an
 * instance (skipping unhealthy ones and open circuits), applies the call's
 * deadline to every attempt, retries when that is safe, records the outcome
 * in the instance's circuit breaker, and falls back when configured.
 *
 * Retry rule: an idempotent method (protobuf `idempotency_level`
 * NO_SIDE_EFFECTS or IDEMPOTENT, or listed in `retry.idempotentMethods`) is
 * retried on a retryable code, on another instance when there is one. Any
 * other method is retried only when the failed attempt provably never
 * reached an instance (see {@link neverSent}); so a non-idempotent call runs
 * at most once. Streaming calls get one attempt, because a failed attempt
 * may already have consumed their input; they still skip unhealthy and
 * open instances, and fall back when none is left.
 */
export class ClusterTransport implements Transport {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly balancer: Balancer;
  private readonly retry: RetryPolicy | undefined;
  private readonly defaultTimeoutMs: number;
  private stopWatch: (() => void) | undefined;
  private ready: Promise<void>;
  private markReady: () => void = () => {};
  private closed = false;
  /** Aborts every attempt in flight when the cluster closes. */
  private readonly closing = new AbortController();
  private lastDiscoveryError = "";

  constructor(private readonly options: ClusterOptions) {
    this.balancer = balancerByName(options.balancer ?? "least-outstanding");
    this.retry = options.retry === false ? undefined : new RetryPolicy(options.retry);
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 30_000;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    // One listener per call in flight.
    setMaxListeners(0, this.closing.signal);
    this.stopWatch = options.discovery.watch(
      (endpoints) => this.update(endpoints),
      (error) => {
        this.lastDiscoveryError = error.message;
        this.emit({ type: "discovery-error", message: error.message });
      },
    );
  }

  /** Resolves once discovery has reported the first list of instances. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  status(): EndpointStatus[] {
    return [...this.endpoints.values()].map((e) => ({
      id: e.id,
      url: e.endpoint.url,
      healthy: e.healthy,
      circuit: e.breaker?.state ?? "closed",
      outstanding: e.outstanding,
    }));
  }

  /** Stops discovery and health checks and closes every connection. */
  close(): void {
    this.closed = true;
    this.closing.abort(
      new ConnectError(
        `cluster ${this.options.discovery.description} was closed`,
        Code.Unavailable,
      ),
    );
    this.stopWatch?.();
    for (const e of this.endpoints.values()) e.remove();
    this.endpoints.clear();
  }

  private emit(event: ClusterEvent): void {
    this.options.onEvent?.(event);
  }

  /** Applies a new list: new instances join, gone ones drain their calls and close. */
  private update(list: readonly Endpoint[]): void {
    if (this.closed) return;
    const ids = new Set(list.map((e) => e.id));
    for (const [id, state] of this.endpoints) {
      const now = list.find((e) => e.id === id);
      if (!ids.has(id) || now?.url !== state.endpoint.url) {
        state.remove();
        this.endpoints.delete(id);
      }
    }
    for (const endpoint of list) {
      if (this.endpoints.has(endpoint.id)) continue;
      const refusal = this.refusal(endpoint);
      if (refusal !== undefined) {
        this.lastDiscoveryError = refusal;
        this.emit({ type: "discovery-error", message: refusal });
        continue;
      }
      this.endpoints.set(endpoint.id, this.createState(endpoint));
    }
    this.emit({ type: "endpoints", ids: [...this.endpoints.keys()] });
    this.markReady();
  }

  /** Why an instance must not be dialled, if it must not. */
  private refusal(endpoint: Endpoint): string | undefined {
    let url: URL;
    try {
      url = new URL(endpoint.url);
    } catch {
      return `instance ${endpoint.id} has an invalid URL ${JSON.stringify(endpoint.url)}`;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return `instance ${endpoint.id}: URL must be http:// or https://, got ${endpoint.url}`;
    }
    if (url.protocol === "http:" && !isLoopbackHost(url.hostname) && !this.options.allowPlaintext) {
      return (
        `refusing plaintext http:// to non-loopback instance ${endpoint.url}: use https://, ` +
        `or pass { allowPlaintext: true } if the network is trusted`
      );
    }
    return undefined;
  }

  private createState(endpoint: Endpoint): EndpointState {
    const url = new URL(endpoint.url);
    const connect = (): ClientTransport =>
      createUrlTransport(url, {
        protocol: this.options.protocol ?? "connect",
        httpVersion: "2",
        interceptors: [...(this.options.interceptors ?? [])],
        ...(url.protocol === "https:" &&
          this.options.tls !== undefined && { tls: this.options.tls }),
        ...(this.options.readMaxBytes !== undefined && { readMaxBytes: this.options.readMaxBytes }),
        ...(this.options.writeMaxBytes !== undefined && {
          writeMaxBytes: this.options.writeMaxBytes,
        }),
      });
    const state = new EndpointState(endpoint, connect, this.options.circuitBreaker);
    if (state.breaker !== undefined) {
      state.breaker.onStateChange = (circuit) => {
        if (circuit === "open") state.reconnect();
        this.emit({ type: "circuit", id: endpoint.id, state: circuit });
      };
    }
    const health = this.options.health;
    if (health !== false) {
      // The monitor checks over its own connection, so that a backlog of
      // calls on the main one cannot make a healthy instance look dead.
      const probe = connect();
      state.health = new HealthMonitor(endpoint.id, probe.transport, health ?? {}, (healthy) => {
        if (!healthy) state.reconnect();
        this.emit(
          healthy
            ? { type: "healthy", id: endpoint.id }
            : { type: "unhealthy", id: endpoint.id, reason: state.health?.lastError ?? "" },
        );
      });
      const stop = state.health.stop.bind(state.health);
      state.health.stop = () => {
        stop();
        probe.close();
      };
      state.health.start();
    }
    return state;
  }

  /**
   * Picks an instance that may take a call now and reserves it (a half-open
   * probe slot, an outstanding call). Prefers instances not tried yet.
   */
  private pick(tried: ReadonlySet<string>):
    | {
        state: EndpointState;
        connection: Connection;
        report: (failed: boolean | undefined) => void;
      }
    | undefined {
    for (let round = 0; round < 3; round++) {
      const usable = [...this.endpoints.values()].filter(
        (e) => !e.removed && e.healthy && (e.breaker?.canPass() ?? true),
      );
      const fresh = usable.filter((e) => !tried.has(e.id));
      const candidates = fresh.length > 0 ? fresh : usable;
      if (candidates.length === 0) return undefined;
      const state = this.balancer.pick(candidates);
      const report = state.breaker === undefined ? () => {} : state.breaker.acquire();
      if (report === undefined) continue;
      const connection = state.connection;
      connection.outstanding++;
      return { state, connection, report };
    }
    return undefined;
  }

  /** Why no instance could take the call, instance by instance. */
  private noInstanceMessage(method: DescMethod): string {
    const states = [...this.endpoints.values()];
    const why =
      states.length === 0
        ? `discovery (${this.options.discovery.description}) found no instances` +
          (this.lastDiscoveryError ? `; last discovery error: ${this.lastDiscoveryError}` : "")
        : states
            .map((e) =>
              !e.healthy
                ? `${e.id} unhealthy (${e.health?.lastError ?? ""})`
                : `${e.id} circuit ${e.breaker?.state ?? "closed"}`,
            )
            .join("; ");
    return `no instance of ${this.options.discovery.description} can take ${methodName(method)}: ${why}`;
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0] | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    return this.run(
      method,
      signal,
      timeoutMs,
      (transport, attemptSignal, attemptTimeout) =>
        transport.unary(method, attemptSignal, attemptTimeout, header, input, contextValues),
      true,
    );
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0] | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    return this.run(
      method,
      signal,
      timeoutMs,
      (transport, attemptSignal, attemptTimeout) =>
        transport.stream(method, attemptSignal, attemptTimeout, header, input, contextValues),
      false,
    );
  }

  /**
   * Holds a started stream's reservation (its outstanding count on the
   * connection) until the stream is over, however it ends: read to the end
   * or failed, aborted by the caller or the cluster's close, past its
   * deadline (the attempt is then aborted, which closes the HTTP/2 stream),
   * or abandoned (connect-es drops `return()`, so a caller's `break` or a
   * stream never iterated is only seen at the deadline or when the
   * iterator is garbage collected).
   */
  private keepStream(
    response: StreamResponse<DescMessage, DescMessage>,
    connection: Connection,
    kept: KeptAttempt | undefined,
    deadline: number,
    name: string,
    timeout: number,
  ): StreamResponse<DescMessage, DescMessage> {
    let released = false;
    let timer: NodeJS.Timeout | undefined;
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      kept?.signal.removeEventListener("abort", release);
      kept?.unlink();
      streamRegistry.unregister(token);
      connection.release();
    };
    const token = {};
    if (kept !== undefined) {
      if (kept.signal.aborted) release();
      else kept.signal.addEventListener("abort", release, { once: true });
      timer = setTimeout(
        () => {
          kept.abort(
            new ConnectError(`${name}: deadline of ${timeout} ms exceeded`, Code.DeadlineExceeded),
          );
          release();
        },
        Math.max(0, deadline - Date.now()) + HARD_DEADLINE_MARGIN_MS,
      );
      timer.unref();
    }
    const tracked = trackStream(response, release);
    streamRegistry.register(tracked.message, release, token);
    return tracked;
  }

  /**
   * The attempt loop shared by unary and streaming calls. For a stream the
   * attempt "ends" when its response is complete, so that outstanding counts
   * and the breaker see the whole stream.
   */
  private async run<
    R extends UnaryResponse<DescMessage, DescMessage> | StreamResponse<DescMessage, DescMessage>,
  >(
    method: DescMethod,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    call: (transport: Transport, signal: AbortSignal, timeoutMs: number) => Promise<R>,
    unary: boolean,
  ): Promise<R> {
    if (this.closed) {
      throw new ConnectError(
        `cluster ${this.options.discovery.description} is closed`,
        Code.Unavailable,
      );
    }
    const timeout = timeoutMs ?? this.defaultTimeoutMs;
    const deadline = Date.now() + timeout;
    const retry = this.retry;
    const idempotent = unary && retry !== undefined && retry.isIdempotent(method);
    // A stream's input may be partly consumed by a failed attempt, so a
    // stream gets one attempt (after it found an instance).
    const maxAttempts = unary ? (retry?.maxAttempts ?? 1) : 1;
    const tried = new Set<string>();
    const name = methodName(method);
    if (this.endpoints.size === 0) {
      await raceDeadline(this.ready, deadline, signal);
    }
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ConnectError(
          `${name}: deadline of ${timeout} ms exceeded before attempt ${attempt}`,
          Code.DeadlineExceeded,
        );
      }
      const picked = this.pick(tried);
      if (picked === undefined) {
        if (this.options.fallback !== undefined) {
          return call(this.options.fallback, signal ?? new AbortController().signal, remaining);
        }
        throw new NotSentError(this.noInstanceMessage(method), Code.Unavailable);
      }
      const { state, connection, report } = picked;
      tried.add(state.id);
      // A per-attempt timeout only helps a call that may be retried: a
      // non-idempotent call gets the whole deadline for its one attempt.
      const attemptTimeout = idempotent
        ? Math.min(remaining, this.options.attemptTimeoutMs ?? remaining)
        : remaining;
      let error: unknown;
      let kept: KeptAttempt | undefined;
      try {
        const response = await withHardDeadline(
          (attemptSignal) => call(connection.client.transport, attemptSignal, attemptTimeout),
          signal,
          attemptTimeout,
          name,
          this.closing.signal,
          unary ? undefined : (k) => (kept = k),
        );
        if (unary) {
          report(false);
          retry?.budget.onSuccess();
          connection.release();
          return response;
        }
        // The stream started, which proves the instance works: report it now,
        // so a long-lived stream never holds a half-open probe slot.
        report(false);
        retry?.budget.onSuccess();
        return this.keepStream(
          response as StreamResponse<DescMessage, DescMessage>,
          connection,
          kept,
          deadline,
          name,
          timeout,
        ) as R;
      } catch (e) {
        error = e;
      }
      connection.release();
      const callerGaveUp = signal?.aborted === true;
      const ce =
        callerGaveUp || this.closed ? ConnectError.from(error) : brokenToUnavailable(error);
      let failed = !callerGaveUp && (state.breaker?.failureCodes.has(ce.code) ?? false);
      if (failed && ce.code === Code.Unavailable && !neverSent(error)) {
        // The connection broke. Every call on it fails at once: that is one
        // failure of the instance, not one per call, so only the first call
        // to notice counts, and it moves new calls to a fresh connection.
        if (connection === state.connection) state.reconnect();
        else failed = false;
        report(connection.countedBreak ? undefined : true);
        connection.countedBreak = true;
      } else {
        report(failed);
      }
      if (callerGaveUp || this.closed) throw error;
      const notSent = neverSent(error);
      // Every failed attempt that may have reached an instance drains the
      // budget, whatever the breaker does with it: the budget alone bounds
      // retries to a fraction of the calls.
      const retryableCode = retry?.isRetryableCode(ce.code) ?? false;
      if (retryableCode && !notSent) retry?.budget.onFailure();
      const where = `instance ${state.id}, attempt ${attempt} of ${maxAttempts}`;
      const safe = idempotent || notSent;
      const timeLeft = deadline - Date.now() > 0;
      const budgetOk = notSent || (retry?.budget.canRetry ?? false);
      if (retryableCode && safe && timeLeft && attempt < maxAttempts && budgetOk) {
        const delay = Math.min(retry?.backoffMs(attempt) ?? 0, Math.max(0, deadline - Date.now()));
        this.emit({ type: "retry", method: name, attempt });
        await sleep(delay, signal);
        continue;
      }
      if (unary && retryableCode && safe && timeLeft && this.options.fallback !== undefined) {
        return call(
          this.options.fallback,
          signal ?? new AbortController().signal,
          deadline - Date.now(),
        );
      }
      if (retryableCode && safe && timeLeft && attempt < maxAttempts && !budgetOk) {
        this.emit({ type: "retry-refused", method: name });
      }
      let why = "";
      if (!timeLeft && ce.code === Code.DeadlineExceeded)
        why = `; the call's deadline of ${timeout} ms is used up`;
      else if (retryableCode && !safe)
        why = `; not retried: ${name} is not idempotent and the request may have reached the plugin`;
      else if (retryableCode && attempt >= maxAttempts) why = "; no attempts left";
      else if (retryableCode && !budgetOk) why = "; not retried: the retry budget is spent";
      throw new ConnectError(
        `${ce.rawMessage} (${where}${why})`,
        ce.code,
        ce.metadata,
        undefined,
        ce,
      );
    }
  }
}

/**
 * Runs one attempt with its own signal, which follows the caller's, and
 * fails it with DeadlineExceeded at most a few milliseconds after its
 * timeout even if the HTTP/2 stack never notices (a partitioned peer).
 */
async function withHardDeadline<R>(
  attempt: (signal: AbortSignal) => Promise<R>,
  caller: AbortSignal | undefined,
  timeoutMs: number,
  name: string,
  closing: AbortSignal,
  /**
   * For streams: their signal must keep following the caller's after they
   * start, so on success the attempt is handed over instead of unlinked.
   */
  keep?: (attempt: KeptAttempt) => void,
): Promise<R> {
  const controller = new AbortController();
  const follow = (): void => controller.abort(caller?.reason);
  const close = (): void => controller.abort(closing.reason);
  if (caller?.aborted) follow();
  if (closing.aborted) close();
  caller?.addEventListener("abort", follow, { once: true });
  closing.addEventListener("abort", close, { once: true });
  const unlink = (): void => {
    caller?.removeEventListener("abort", follow);
    closing.removeEventListener("abort", close);
  };
  let timer: NodeJS.Timeout | undefined;
  const hard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new ConnectError(
        `${name}: deadline of ${timeoutMs} ms exceeded`,
        Code.DeadlineExceeded,
      );
      controller.abort(error);
      reject(error);
    }, timeoutMs + HARD_DEADLINE_MARGIN_MS);
  });
  let ok = false;
  try {
    const value = await Promise.race([attempt(controller.signal), hard]);
    ok = true;
    return value;
  } finally {
    clearTimeout(timer);
    if (ok && keep !== undefined) {
      keep({
        signal: controller.signal,
        abort: (reason) => controller.abort(reason),
        unlink,
      });
    } else unlink();
  }
}

/** A started stream's attempt: its signal, a way to end it, and its listener cleanup. */
interface KeptAttempt {
  readonly signal: AbortSignal;
  abort(reason: unknown): void;
  unlink(): void;
}

/** Releases the reservation of a stream whose iterator was dropped without finishing. */
const streamRegistry = new FinalizationRegistry<() => void>((release) => release());

/** Socket errors that mean the connection broke under the call. */
const BROKEN = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT"]);

/**
 * A call the caller did not cancel that fails as Canceled (an HTTP/2
 * RST_STREAM CANCEL, a session torn down) or as Aborted from a socket error
 * really failed because the connection broke: Unavailable says so, and
 * makes it retryable for idempotent methods. Codes the plugin chose pass
 * through.
 */
function brokenToUnavailable(error: unknown): ConnectError {
  const ce = ConnectError.from(error);
  if (ce.code === Code.Canceled) {
    return new ConnectError(
      `connection broke: ${ce.rawMessage}`,
      Code.Unavailable,
      ce.metadata,
      undefined,
      ce,
    );
  }
  if (ce.code === Code.Aborted) {
    for (let e: unknown = ce.cause, d = 0; typeof e === "object" && e !== null && d < 6; d++) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === "string" && BROKEN.has(code)) {
        return new ConnectError(
          `connection broke: ${ce.rawMessage}`,
          Code.Unavailable,
          ce.metadata,
          undefined,
          ce,
        );
      }
      e = (e as { cause?: unknown }).cause;
    }
  }
  return ce;
}

/** Calls `done` once the stream's responses end, however they end. */
function trackStream(
  response: StreamResponse<DescMessage, DescMessage>,
  done: () => void,
): StreamResponse<DescMessage, DescMessage> {
  const messages = response.message;
  return {
    ...response,
    message: {
      async *[Symbol.asyncIterator]() {
        try {
          yield* messages;
        } finally {
          done();
        }
      },
    },
  };
}

async function raceDeadline(
  promise: Promise<void>,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new ConnectError(
                "deadline exceeded while waiting for discovery",
                Code.DeadlineExceeded,
              ),
            ),
          Math.max(0, deadline - Date.now()),
        );
        signal?.addEventListener("abort", () => reject(ConnectError.from(signal.reason)), {
          once: true,
        });
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(ConnectError.from(signal.reason));
      },
      { once: true },
    );
  });
}

function methodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
