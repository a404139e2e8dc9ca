/**
 * mulberry32: a small seeded PRNG, so that a run's choices can be
 * replayed from its seed. A module of its own, without imports or side
 * effects, so that tests and benchmarks can use it without loading the
 * chaos harness. Returns numbers in [0, 1), like Math.random.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
