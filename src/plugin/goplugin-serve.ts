import { writeSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { EmptySchema } from "../gen/plugin/grpc_controller_pb.js";
import { GRPCBroker } from "../gen/plugin/grpc_broker_pb.js";
import { GRPCController } from "../gen/plugin/grpc_controller_pb.js";
import {
  GRPCStdio,
  StdioData_Channel,
  StdioDataSchema,
  type StdioData,
} from "../gen/plugin/grpc_stdio_pb.js";
import { Env } from "../protocol/env.js";
import { PluginError } from "../protocol/errors.js";
import { GrpcBroker } from "../transport/goplugin-broker.js";
import { launchedBroker, type LaunchMtls } from "./launch-mtls.js";

/** What a launched plugin needs to answer a go-plugin host. */
export interface GoPluginSide {
  /** True when a go-plugin host (not a connect-plugin host) launched us. */
  readonly hostIsGoPlugin: boolean;
  readonly broker: GrpcBroker;
  /** Registers plugin.GRPCController, plugin.GRPCStdio and plugin.GRPCBroker. */
  readonly routes: (router: ConnectRouter) => void;
  /**
   * From now on, what the program writes to process.stdout and
   * process.stderr goes to the host over plugin.GRPCStdio, as a Go plugin's
   * os.Stdout and os.Stderr do. The library's own log lines still go to the
   * real stderr, which the host parses as hclog JSON.
   */
  captureStdio(): void;
}

let current: GrpcBroker | undefined;

/**
 * The go-plugin GRPCBroker of this plugin process, for implementations that
 * call back into their host (the host serves a service and passes its id in
 * a request; `dial(id)` reaches it) or that start services for the host.
 * Throws unless `serve()` was launched by a host.
 */
export function goPluginBroker(): GrpcBroker {
  // serve() on the framed transport does not load this module; it leaves
  // what the broker needs in launch-mtls.ts.
  const launched = launchedBroker();
  if (current === undefined && launched !== undefined) current = new GrpcBroker(launched);
  if (current === undefined) {
    throw new PluginError(
      "not-running",
      "goPluginBroker(): this process is not a plugin launched by a host (call serve() first)",
    );
  }
  return current;
}

/**
 * Prepares the go-plugin parts of a launched plugin: the broker (over
 * AutoMTLS when `mtls` is on), controller and stdio services.
 */
export function prepareGoPluginSide(options: {
  readonly socketDir: string | undefined;
  readonly mtls: LaunchMtls | undefined;
  readonly onShutdown: (reason: string) => void;
}): GoPluginSide {
  const hostIsGoPlugin = process.env[Env.transports] === undefined;
  const peer = options.mtls?.peer;
  const broker = new GrpcBroker({
    ...(peer !== undefined && { tls: peer }),
    ...(options.socketDir !== undefined && { socketDir: options.socketDir }),
  });
  current = broker;
  const stdio = new StdioForwarder();
  return {
    hostIsGoPlugin,
    broker,
    routes: (router) => {
      router.service(GRPCController, {
        shutdown: () => {
          // Answer first, then shut down gracefully, as go-plugin's controller does.
          setImmediate(() => options.onShutdown("go-plugin host called GRPCController.Shutdown"));
          return create(EmptySchema, {});
        },
      });
      router.service(GRPCStdio, {
        streamStdio: (_req, ctx) => {
          if (hostIsGoPlugin) endsWithHost(ctx.signal, options.onShutdown);
          return stdio.stream(ctx.signal);
        },
      });
      router.service(GRPCBroker, {
        startStream: (requests, ctx) => {
          if (hostIsGoPlugin) endsWithHost(ctx.signal, options.onShutdown);
          void broker.consume(requests);
          return broker.outbound(ctx.signal);
        },
      });
    },
    captureStdio: () => stdio.capture(),
  };
}

/**
 * A go-plugin host keeps its GRPCStdio and GRPCBroker streams open for as
 * long as it uses the plugin, and closes them only after Shutdown. When one
 * ends otherwise, the host's connection is gone: the host died, even by
 * SIGKILL. That is how a plugin under a go-plugin host notices, which keeps
 * the plugin's stdin (its own) and may have started it through `sh -c`, so
 * that neither stdin nor the parent pid tells. (Our shutdown ends the streams
 * too; a second shutdown request is a no-op.)
 */
function endsWithHost(signal: AbortSignal, shutdown: (reason: string) => void): void {
  signal.addEventListener(
    "abort",
    () => shutdown("the go-plugin host went away (its connection to the plugin closed)"),
    { once: true },
  );
}

/** Bytes kept for the host while it has not opened the stdio stream yet. */
const MAX_BUFFERED_BYTES = 1 << 20;

/**
 * Forwards stdout and stderr writes over plugin.GRPCStdio. Until the host
 * opens the stream, up to 1 MiB is kept; older output beyond that is
 * dropped (a Go plugin would block instead, which we never want).
 */
class StdioForwarder {
  private readonly pending: StdioData[] = [];
  private bytes = 0;
  private wake: (() => void) | undefined;
  private streaming = false;

  capture(): void {
    for (const [stream, channel] of [
      [process.stdout, StdioData_Channel.STDOUT],
      [process.stderr, StdioData_Channel.STDERR],
    ] as const) {
      const write = (
        chunk: string | Uint8Array,
        encodingOrCallback?: BufferEncoding | ((error?: Error | null) => void),
        callback?: (error?: Error | null) => void,
      ): boolean => {
        const encoding = typeof encodingOrCallback === "string" ? encodingOrCallback : undefined;
        const done = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
        const data = typeof chunk === "string" ? Buffer.from(chunk, encoding) : Buffer.from(chunk);
        this.push(create(StdioDataSchema, { channel, data }));
        if (done !== undefined) queueMicrotask(() => done(null));
        return true;
      };
      stream.write = write;
    }
    // Output still queued when the process exits (console.log(x) then
    // process.exit()) goes to the real stdout and stderr, which the host
    // also reads, rather than being lost.
    process.once("exit", () => {
      for (const data of this.pending.splice(0)) {
        try {
          writeSync(data.channel === StdioData_Channel.STDOUT ? 1 : 2, data.data);
        } catch {
          // The host is gone.
        }
      }
    });
  }

  async *stream(signal: AbortSignal): AsyncGenerator<StdioData> {
    if (this.streaming) return; // go-plugin: "must only be called ONCE"
    this.streaming = true;
    const onAbort = (): void => this.wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal.aborted) {
        const next = this.pending.shift();
        if (next !== undefined) {
          this.bytes -= next.data.length;
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  private push(data: StdioData): void {
    this.pending.push(data);
    this.bytes += data.data.length;
    while (this.bytes > MAX_BUFFERED_BYTES && this.pending.length > 1) {
      this.bytes -= this.pending.shift()?.data.length ?? 0;
    }
    this.wake?.();
  }
}
