/**
 * The open calls of one framed connection, by call id (either side).
 *
 * Not a Map, for the garbage collector's sake. A Map whose entries come and
 * go (64 callers: a call opens and another ends every few µs) rebuilds its
 * hash table every few dozen calls, and V8 leaves each replaced table
 * pointing to its successor (for iterators still walking it) with its
 * entries in place. Once one replaced table had been promoted to the old
 * generation, it held every later table, and the calls in them, through
 * every scavenge until the next full collection: on 64 concurrent callers
 * the plugin promoted about 1.1 KB per call and spent 5-10 ms per scavenge
 * copying calls long over (`--trace-gc-nvp`: 55 MB promoted over 50k
 * calls with a Map, 0.3 MB without; docs/local-transports.md).
 *
 * Instead, a fixed array of slots indexed by the id's low bits: a client
 * numbers its calls one after another, so the calls open at once sit in
 * different slots and a lookup is one array read. An id whose slot is held
 * by another open call (a stream that outlived SLOTS later calls, or a peer
 * that picks its own ids) goes to a Map beside it, which only such calls
 * churn. 256 slots (about 4 KB per connection) hold 64 concurrent callers
 * with room to spare.
 */
const SLOTS = 256;
const MASK = SLOTS - 1;

export class CallTable<T> {
  private readonly ids: number[] = new Array<number>(SLOTS).fill(-1);
  private readonly calls: (T | undefined)[] = new Array<T | undefined>(SLOTS).fill(undefined);
  private overflow: Map<number, T> | undefined;
  /** Calls in the table. */
  size = 0;

  get(id: number): T | undefined {
    const i = id & MASK;
    if (this.ids[i] === id) return this.calls[i];
    return this.overflow?.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  set(id: number, value: T): void {
    const i = id & MASK;
    if (this.ids[i] === id) {
      this.calls[i] = value;
      return;
    }
    const overflow = this.overflow;
    if (overflow?.has(id) === true) {
      overflow.set(id, value);
      return;
    }
    this.size++;
    if (this.calls[i] === undefined) {
      this.ids[i] = id;
      this.calls[i] = value;
    } else {
      (this.overflow ??= new Map()).set(id, value);
    }
  }

  /** Removes call `id`; true if it was there. */
  delete(id: number): boolean {
    const i = id & MASK;
    if (this.ids[i] === id) {
      this.ids[i] = -1;
      this.calls[i] = undefined;
      this.size--;
      return true;
    }
    if (this.overflow?.delete(id) === true) {
      this.size--;
      return true;
    }
    return false;
  }

  /** The calls, in a new array (safe to change the table while walking it). */
  values(): T[] {
    const out: T[] = [];
    for (const call of this.calls) if (call !== undefined) out.push(call);
    if (this.overflow !== undefined) for (const call of this.overflow.values()) out.push(call);
    return out;
  }

  /** The ids of the calls, in a new array (slot order, then the overflow's). */
  keys(): number[] {
    const out: number[] = [];
    for (let i = 0; i < SLOTS; i++)
      if (this.calls[i] !== undefined) out.push(this.ids[i] as number);
    if (this.overflow !== undefined) for (const id of this.overflow.keys()) out.push(id);
    return out;
  }

  clear(): void {
    this.ids.fill(-1);
    this.calls.fill(undefined);
    this.overflow = undefined;
    this.size = 0;
  }
}
