/**
 * How much bench/run.ts measures (`--quick` or a full run), and its
 * unmeasured re-warm-ups: shared with the scripts that run its scenarios
 * again in its way (bench/h2-rows.ts), so that their figures compare.
 */

/** 1 MiB: scenario 3's message size, and the big message of every other bench script. */
export const MiB = 1024 * 1024;

/** A run's rounds and, per round, each scenario's calls (`big`: 1 MiB calls in `bigBatches` batches). */
export const RUN_SIZES = {
  quick: {
    rounds: 3,
    unary: 500,
    big: 15,
    bigBatches: 2,
    concurrentMs: 500,
    stream: 30_000,
    cold: 2,
    inproc: 6,
  },
  full: {
    rounds: 7,
    unary: 2_000,
    big: 20,
    bigBatches: 5,
    concurrentMs: 1_500,
    stream: 100_000,
    cold: 3,
    inproc: 15,
  },
} as const;

/**
 * The unmeasured batch each contender runs right before each measured one
 * (and a stream of a tenth of `stream`). A host left idle for a minute
 * while the others ran starts slow: V8 shrinks an idle heap, and the next
 * 2,000 calls of a Node host ran 22-28 garbage collections instead of 3-9
 * (docs/http2-client.md, 2026-12-02); a full run leaves each host idle
 * longer than --quick does. The same for every contender, Go included.
 */
export const REWARM = { unary: 100, concurrentMs: 100, big: 2 } as const;
