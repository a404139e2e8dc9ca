/** What a balancer sees of an endpoint: an id and its calls in flight. */
export interface BalancedEndpoint {
  readonly id: string;
  readonly outstanding: number;
}

/**
 * Picks one endpoint out of the candidates for a call. The cluster passes
 * only endpoints that may take a call now (healthy, circuit not open), in a
 * stable order, and never an empty list.
 */
export interface Balancer {
  pick<E extends BalancedEndpoint>(candidates: readonly E[]): E;
}

export type BalancerName = "round-robin" | "least-outstanding";

/** Each candidate in turn. */
export function roundRobin(): Balancer {
  let next = 0;
  return {
    pick(candidates) {
      const chosen = candidates[next % candidates.length];
      next = (next + 1) % 1_000_000_007;
      return chosen as (typeof candidates)[number];
    },
  };
}

/**
 * The candidate with the fewest calls in flight; ties go round-robin, so
 * that an idle pool still spreads its calls. A slow instance builds up
 * outstanding calls and so receives fewer new ones.
 */
export function leastOutstanding(): Balancer {
  let next = 0;
  return {
    pick(candidates) {
      const start = next++ % candidates.length;
      let best = candidates[start] as (typeof candidates)[number];
      // Stryker disable next-line EqualityOperator: "<=" only compares the start candidate with itself again (the index wraps), which never changes the choice.
      for (let i = 1; i < candidates.length; i++) {
        const c = candidates[(start + i) % candidates.length] as (typeof candidates)[number];
        if (c.outstanding < best.outstanding) best = c;
      }
      return best;
    },
  };
}

export function balancerByName(name: BalancerName | Balancer): Balancer {
  if (typeof name !== "string") return name;
  return name === "round-robin" ? roundRobin() : leastOutstanding();
}
