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
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import {
  brokenToUnavailable,
  raceDeadline,
  sleep,
  withHardDeadline,
  type KeptAttempt,
} from "./attempt.js";
import type { ClusterOptions, EndpointStatus } from "./cluster-options.js";
import { EndpointPool, methodName } from "./endpoint-pool.js";
import { NotSentError, RetryPolicy, neverSent } from "./retry.js";
import { decideRetry } from "./retry-decision.js";
import { clusterHandshake } from "./negotiation.js";
import { PluginController } from "../gen/connectplugin/v1/controller_pb.js";
import { leaseStream } from "./stream-lease.js";

export type {
  ClusterEvent,
  ClusterOptions,
  ClusterTls,
  EndpointStatus,
} from "./cluster-options.js";

type AnyResponse =
  UnaryResponse<DescMessage, DescMessage> | StreamResponse<DescMessage, DescMessage>;

/**
 * A Connect transport over a pool of plugin instances. Per call it picks an
 * instance (skipping unhealthy ones and open circuits), applies the call's
 * deadline to every attempt, retries when that is safe, records the outcome
 * in the instance's circuit breaker, and falls back when configured.
 *
 * Retry rule ({@link decideRetry}): an idempotent method (protobuf
 * `idempotency_level` NO_SIDE_EFFECTS or IDEMPOTENT, or listed in
 * `retry.idempotentMethods`) is retried on a retryable code, on another
 * instance when there is one. Any other method is retried only when the
 * failed attempt provably never reached an instance (see {@link neverSent});
 * so a non-idempotent call runs at most once. Streaming calls get one
 * attempt, because a failed attempt may already have consumed their input;
 * they still skip unhealthy and open instances, and fall back when none is
 * left. The parts: EndpointPool (instances), attempt.ts (deadlines),
 * stream-lease.ts (a stream's hold on its instance).
 */
export class ClusterTransport implements Transport {
  private readonly pool: EndpointPool;
  private readonly retry: RetryPolicy | undefined;
  private readonly defaultTimeoutMs: number;
  private readonly stopWatch: () => void;
  private readonly ready: Promise<void>;
  private markReady: () => void = () => {};
  private closed = false;
  /** Aborts every attempt in flight when the cluster closes. */
  private readonly closing = new AbortController();

  constructor(private readonly options: ClusterOptions) {
    this.pool = new EndpointPool(options, (event) => options.onEvent?.(event));
    this.retry = options.retry === false ? undefined : new RetryPolicy(options.retry);
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 30_000;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    // One listener per call in flight.
    setMaxListeners(0, this.closing.signal);
    this.stopWatch = options.discovery.watch(
      (endpoints) => {
        if (this.closed) return;
        this.pool.update(endpoints);
        this.markReady();
      },
      (error) => this.pool.discoveryFailed(error.message),
    );
  }

  /** Resolves once discovery has reported the first list of instances. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  status(): EndpointStatus[] {
    return this.pool.status();
  }

  /** Stops discovery and health checks and closes every connection. */
  close(): void {
    this.closed = true;
    const name = this.options.discovery.description;
    this.closing.abort(new ConnectError(`cluster ${name} was closed`, Code.Unavailable));
    this.stopWatch();
    this.pool.close();
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0] | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    if (
      this.options.negotiation !== undefined &&
      (method as DescMethod) === PluginController.method.handshake
    ) {
      return this.handshake(method, signal, timeoutMs, (t, s, ms) =>
        t.unary(method, s, ms, header, input, contextValues),
      );
    }
    return this.run(method, signal, timeoutMs, true, (transport, attemptSignal, attemptTimeout) =>
      transport.unary(method, attemptSignal, attemptTimeout, header, input, contextValues),
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
    return this.run(method, signal, timeoutMs, false, (transport, attemptSignal, attemptTimeout) =>
      transport.stream(method, attemptSignal, attemptTimeout, header, input, contextValues),
    );
  }

  /**
   * With per-instance negotiation, the cluster answers a client's Handshake
   * itself, from the instances admitted (see {@link clusterHandshake}), once
   * every instance has answered or failed its first Handshake.
   */
  private async handshake<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    viaFallback: (
      transport: Transport,
      signal: AbortSignal,
      timeoutMs: number | undefined,
    ) => Promise<UnaryResponse<I, O>>,
  ): Promise<UnaryResponse<I, O>> {
    const timeout = this.timeoutOf(timeoutMs);
    const deadline = Date.now() + timeout;
    if (this.pool.size === 0) await raceDeadline(this.ready, deadline, signal);
    await raceDeadline(this.pool.whenAllAsked(), deadline, signal, "every instance's Handshake");
    let message = clusterHandshake(this.pool.admissions());
    if (message === undefined && this.options.fallback !== undefined) {
      // No instance can answer, and a fallback is what the pool being down
      // is for: it handshakes as it takes every other call.
      return viaFallback(
        this.options.fallback,
        signal ?? new AbortController().signal,
        timeLeft(deadline, methodName(method), timeout),
      );
    }
    if (message === undefined) {
      // Nobody answered yet: give a transient failure (a reset at start)
      // a few more tries before failing the client's start.
      await raceDeadline(this.pool.whenAnswered(3), deadline, signal, "an instance's Handshake");
      message = clusterHandshake(this.pool.admissions());
    }
    if (message === undefined) {
      throw new NotSentError(this.pool.noInstanceMessage(method), Code.Unavailable);
    }
    return {
      stream: false,
      service: method.parent,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: message as unknown as UnaryResponse<I, O>["message"],
    };
  }

  /** Waits for the first list of instances, then for one to be admitted for the method's service (or none left negotiating). */
  private async admitted(
    method: DescMethod,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (this.pool.size === 0) await raceDeadline(this.ready, deadline, signal);
    // With a fallback, a call never waits for instances still negotiating
    // (an unreachable one stays so): the fallback takes it meanwhile.
    if (this.options.fallback !== undefined) return;
    // No await when nothing is pending: a call's deadline starts counting
    // at once, and an extra turn of the event loop must not eat into it.
    if (this.pool.settled(method.parent.typeName)) return;
    await raceDeadline(
      this.pool.whenSettled(method.parent.typeName),
      deadline,
      signal,
      "an instance to finish its Handshake",
    );
  }

  /**
   * A call's whole deadline: the caller's timeout, or defaultTimeoutMs when
   * it gave none. A timeout <= 0 (or NaN) is none, as connect-es and every
   * plain transport read it, not a deadline already passed.
   */
  private timeoutOf(timeoutMs: number | undefined): number {
    return timeoutMs !== undefined && timeoutMs > 0 ? timeoutMs : this.defaultTimeoutMs;
  }

  /**
   * The attempt loop shared by unary and streaming calls. For a stream the
   * attempt "ends" when its response is complete, so that outstanding counts
   * and the breaker see the whole stream.
   */
  private async run<R extends AnyResponse>(
    method: DescMethod,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    unary: boolean,
    call: (transport: Transport, signal: AbortSignal, timeoutMs: number) => Promise<R>,
  ): Promise<R> {
    const cluster = this.options.discovery.description;
    if (this.closed) throw new ConnectError(`cluster ${cluster} is closed`, Code.Unavailable);
    const timeout = this.timeoutOf(timeoutMs);
    const deadline = Date.now() + timeout;
    const retry = this.retry;
    const idempotent = unary && retry !== undefined && retry.isIdempotent(method);
    // A stream's input may be partly consumed by a failed attempt, so a
    // stream gets one attempt (after it found an instance).
    const maxAttempts = unary ? (retry?.maxAttempts ?? 1) : 1;
    const name = methodName(method);
    const fallback = async (): Promise<R> =>
      call(
        this.options.fallback!,
        signal ?? new AbortController().signal,
        timeLeft(deadline, name, timeout),
      );
    const tried = new Set<string>();
    await this.admitted(method, deadline, signal);
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ConnectError(
          `${name}: deadline of ${timeout} ms exceeded before attempt ${attempt}`,
          Code.DeadlineExceeded,
        );
      }
      const picked = this.pool.pick(tried, method.parent.typeName);
      if (picked === undefined) {
        if (this.options.fallback !== undefined) return fallback();
        throw new NotSentError(this.pool.noInstanceMessage(method), Code.Unavailable);
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
        // For a stream, starting proves the instance works: report it now,
        // so a long-lived stream never holds a half-open probe slot.
        report(false);
        retry?.budget.onSuccess();
        if (unary) {
          connection.release();
          return response;
        }
        const streamed = response as StreamResponse<DescMessage, DescMessage>;
        const release = (): void => connection.release();
        return leaseStream(streamed, release, kept, deadline, name, timeout) as R;
      } catch (e) {
        error = e;
      }
      connection.release();
      const callerGaveUp = signal?.aborted === true;
      const abandoned = callerGaveUp || this.closed;
      const ce = abandoned ? ConnectError.from(error) : brokenToUnavailable(error);
      this.pool.reportFailure(picked, error, ce.code, callerGaveUp);
      const notSent = neverSent(error);
      const retryableCode = retry?.isRetryableCode(ce.code) ?? false;
      // Every failed attempt that may have reached an instance drains the
      // budget, whatever the breaker does with it: the budget alone bounds
      // retries to a fraction of the calls.
      if (!abandoned && retryableCode && !notSent) retry?.budget.onFailure();
      const decision = decideRetry(
        {
          code: ce.code,
          abandoned,
          notSent,
          idempotent,
          retryableCode,
          budgetAllows: retry?.budget.canRetry ?? false,
          attempt,
          maxAttempts,
          timeLeft: deadline - Date.now() > 0,
          canFallBack: unary && this.options.fallback !== undefined,
        },
        name,
        timeout,
      );
      if (decision.action === "retry") {
        this.options.onEvent?.({ type: "retry", method: name, attempt });
      } else if (decision.action !== "rethrow" && decision.budgetSpent === true) {
        this.options.onEvent?.({ type: "retry-refused", method: name });
      }
      switch (decision.action) {
        case "rethrow":
          throw error;
        case "retry":
          await sleep(
            Math.min(retry?.backoffMs(attempt) ?? 0, Math.max(0, deadline - Date.now())),
            signal,
          );
          continue;
        case "fallback":
          return fallback();
        case "fail": {
          const where = `instance ${state.id}, attempt ${attempt} of ${maxAttempts}`;
          const message = `${ce.rawMessage} (${where}${decision.why})`;
          throw new ConnectError(message, ce.code, ce.metadata, undefined, ce);
        }
      }
    }
  }
}

/**
 * What is left of a call's deadline for the fallback, or DeadlineExceeded
 * when nothing is: transports read a timeout of 0 or less as no deadline at
 * all (connect-es' CallOptions), and a cluster's call always has one.
 */
function timeLeft(deadline: number, name: string, timeout: number): number {
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    throw new ConnectError(
      `${name}: deadline of ${timeout} ms exceeded before the fallback`,
      Code.DeadlineExceeded,
    );
  }
  return remaining;
}
