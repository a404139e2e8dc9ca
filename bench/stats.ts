/** Percentiles, medians and shuffled orders for the benchmarks. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

/** Rounds to a readable precision: integers above 100, 3 significant digits below. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  if (Math.abs(value) >= 100) return Math.round(value);
  return Number(value.toPrecision(3));
}

/**
 * A shuffled copy of `items` (Fisher-Yates), so that contenders run in a
 * fresh order each round; `random` defaults to Math.random (pass a seeded
 * one to replay an order).
 */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
