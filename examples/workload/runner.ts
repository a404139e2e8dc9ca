/**
 * A StormDB-style run: N concurrent workers, each sending its operations one
 * by one, every operation with its own idempotency key. An operation that
 * fails because the plugin went away (Unavailable: it crashed, or is being
 * restarted) is retried with the same key, so a write that reached the
 * database before the crash is reported as a duplicate, never written
 * twice. An operation that still fails after `maxAttempts` is reported as
 * failed, with its last error: none is silently dropped.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Workload } from "./shared.js";

export interface RunOptions {
  readonly workers: number;
  readonly opsPerWorker: number;
  /** Prefix of every idempotency key: `<prefix>-<worker>-<seq>`. */
  readonly keyPrefix: string;
  /** Attempts per operation, the first included. Default 40. */
  readonly maxAttempts?: number;
  /** Called after each acknowledged operation (the fault injector's hook). */
  readonly onAck?: (acked: number) => void;
}

export interface RunReport {
  /** Keys the plugin acknowledged (written by this call or an earlier attempt). */
  readonly acked: Set<string>;
  /** Keys that could not be acknowledged, with the last error. */
  readonly failed: Map<string, string>;
  /** Acknowledged as duplicate: an earlier attempt had written them. */
  readonly duplicates: number;
  /** Attempts that failed and were retried. */
  readonly retries: number;
  /** Host-side latency of each acknowledged first attempt, µs. */
  readonly latencies: number[];
  /** Database time of the same calls, as the plugin measured it, µs. */
  readonly dbLatencies: number[];
}

const retryable = (e: unknown) => e instanceof ConnectError && e.code === Code.Unavailable;

export async function runWorkload(
  client: Client<typeof Workload>,
  o: RunOptions,
): Promise<RunReport> {
  const acked = new Set<string>();
  const failed = new Map<string, string>();
  const latencies: number[] = [];
  const dbLatencies: number[] = [];
  let duplicates = 0;
  let retries = 0;
  const maxAttempts = o.maxAttempts ?? 40;
  const worker = async (w: number) => {
    for (let seq = 0; seq < o.opsPerWorker; seq++) {
      const key = `${o.keyPrefix}-${w}-${seq}`;
      const op = {
        idempotencyKey: key,
        worker: w,
        seq: BigInt(seq),
        payload: `worker ${w} op ${seq}`,
      };
      for (let attempt = 1; ; attempt++) {
        const start = performance.now();
        try {
          const { result } = await client.execute({ op });
          if (result?.idempotencyKey !== key)
            throw new Error(`plugin answered for ${result?.idempotencyKey}, not ${key}`);
          if (attempt === 1) {
            latencies.push((performance.now() - start) * 1000);
            dbLatencies.push(Number(result.dbMicros));
          }
          if (result.duplicate) duplicates++;
          acked.add(key);
          o.onAck?.(acked.size);
          break;
        } catch (e) {
          if (!retryable(e) || attempt >= maxAttempts) {
            failed.set(key, e instanceof Error ? e.message : String(e));
            break;
          }
          retries++;
          await new Promise((r) => setTimeout(r, Math.min(25 * attempt, 250)));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: o.workers }, (_, w) => worker(w)));
  return { acked, failed, duplicates, retries, latencies, dbLatencies };
}
