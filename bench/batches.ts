/**
 * One scenario's calls in batches: each batch runs over the contenders in
 * a fresh order, every contender's `warm` unmeasured calls right before
 * its `n` measured ones, and each contender's measured calls are pooled.
 * The same sample shape for every contender; bench/run.ts' 1 MiB scenario
 * and bench/mib-ab.ts use it. Why batches: one batch of 20 1 MiB calls
 * lasts 50-500 ms, and its p50 is whichever state the machine was in
 * meanwhile; finer interleaving gives every contender the same mix
 * (docs/local-transports.md, session 25).
 */
export interface BatchCaller {
  /** `n` sequential calls of `size` bytes; their latencies in µs. */
  unary(n: number, size: number): Promise<number[]>;
}

/** How many batches, and per batch and contender the unmeasured and measured calls of `size` bytes. */
export interface BatchShape {
  batches: number;
  warm: number;
  n: number;
  size: number;
}

/**
 * Runs the batches; the measured latencies of each contender's calls, by
 * key, in the order given. Throws for a shape with no measured call or a
 * count that is not a whole number (MIB_AB_BATCHES=x would print NaN).
 */
export async function interleavedBatches<K>(
  contenders: ReadonlyArray<readonly [K, BatchCaller]>,
  shape: BatchShape,
  shuffle: <T>(items: readonly T[]) => T[],
): Promise<Map<K, number[]>> {
  const { batches, warm, n } = shape;
  if (![batches, warm, n].every(Number.isInteger) || batches < 1 || n < 1 || warm < 0)
    throw new RangeError(
      `batches and n must be whole numbers ≥ 1, warm ≥ 0: ${JSON.stringify(shape)}`,
    );
  const pooled = new Map<K, number[]>(contenders.map(([key]) => [key, []]));
  for (let b = 0; b < batches; b++)
    for (const [key, c] of shuffle(contenders)) {
      await c.unary(warm, shape.size);
      pooled.get(key)?.push(...(await c.unary(n, shape.size)));
    }
  return pooled;
}
