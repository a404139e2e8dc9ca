import * as net from "node:net";

/**
 * The faults the proxy can inject, on every connection through it until the
 * next change:
 * - `latency`: each chunk is held for `ms` before it is passed on.
 * - `blackhole`: bytes stop flowing in both directions and new connections
 *   are accepted but get nowhere (a network partition: no error, no answer).
 *   Like TCP under a partition, held bytes are delivered if it heals before
 *   the peers give up: bytes are delayed, never dropped, so the HTTP/2 byte
 *   stream is never corrupted.
 * - `slow`: each direction is throttled to `bytesPerSecond`.
 * `reset()` is a fault of its own: it kills every open connection with a TCP
 * RST. `refuse()` stops listening, so new connections are refused
 * (ECONNREFUSED, as for a dead instance without a proxy) until `accept()`.
 */
export type Fault =
  | { readonly kind: "none" }
  | { readonly kind: "latency"; readonly ms: number }
  | { readonly kind: "blackhole" }
  | { readonly kind: "slow"; readonly bytesPerSecond: number };

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
}

/**
 * A fault-injecting TCP proxy in front of one plugin instance, in the spirit
 * of toxiproxy (which is not available here). The host connects to the
 * proxy's port; the proxy connects to the instance. Chunks are forwarded in
 * order per direction, each after the delay the current fault asks for.
 */
export class FaultProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private fault: Fault = { kind: "none" };
  /** Resets injected so far, counted per connection killed. */
  resets = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly listenPort = 0,
  ) {}

  /**
   * The port the proxy was given at start(). It stays the same while it
   * refuses connections and after it listens again, so a workload may read it
   * at any moment (reading it from the listening socket threw "proxy is not
   * listening" while a refuse() was closing it, and killed the harness).
   */
  get port(): number {
    if (this.boundPort === undefined) throw new Error("proxy was never started");
    return this.boundPort;
  }

  /** Bytes received from clients (the host), in total: a test waits for a call to arrive. */
  bytesFromClients = 0;
  private boundPort: number | undefined;
  private refusing = false;

  async start(): Promise<void> {
    await this.bind(this.listenPort);
  }

  private async bind(port: number): Promise<void> {
    const server = net.createServer({ noDelay: true }, (client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no port");
    this.boundPort = address.port;
  }

  /** Stops listening: connection attempts are refused until {@link listen}. */
  async refuse(): Promise<void> {
    const server = this.server;
    if (server === undefined || this.refusing) return;
    this.refusing = true;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port after {@link refuse}. */
  async listen(): Promise<void> {
    if (!this.refusing || this.boundPort === undefined) return;
    await this.bind(this.boundPort);
    this.refusing = false;
  }

  setFault(fault: Fault): void {
    this.fault = fault;
  }

  get currentFault(): Fault {
    return this.fault;
  }

  /** Kills every connection with a TCP RST. Returns how many there were. */
  reset(): number {
    const n = this.pairs.size;
    for (const pair of this.pairs) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
    }
    this.pairs.clear();
    this.resets += n;
    return n;
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    const server = this.server;
    await new Promise<void>((resolve) =>
      server?.listening === true ? server.close(() => resolve()) : resolve(),
    );
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect({ ...this.target, noDelay: true });
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = (): void => {
      if (!this.pairs.delete(pair)) return;
      // A refused or reset upstream becomes a reset client: the host sees
      // the instance fail the way it would without the proxy.
      client.resetAndDestroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    this.forward(client, upstream, true);
    this.forward(upstream, client, false);
  }

  /** Passes chunks from `from` to `to` in order, each delayed as the fault says. */
  private forward(from: net.Socket, to: net.Socket, fromClient: boolean): void {
    let chain = Promise.resolve();
    let nextFree = 0;
    from.on("data", (chunk: Buffer) => {
      if (fromClient) this.bytesFromClients += chunk.length;
      const fault = this.fault;
      let delay = 0;
      if (fault.kind === "latency") delay = fault.ms;
      if (fault.kind === "slow") {
        const now = Date.now();
        const start = Math.max(now, nextFree);
        nextFree = start + (chunk.length / fault.bytesPerSecond) * 1000;
        delay = nextFree - now;
      }
      chain = chain.then(async () => {
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        while (this.fault.kind === "blackhole" && !to.destroyed) {
          await new Promise((r) => setTimeout(r, 20));
        }
        if (!to.destroyed) to.write(chunk);
      });
    });
  }
}
