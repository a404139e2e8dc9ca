/** Garbage collection on demand for retention tests (node's --expose-gc, set at run time). */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
/** A full garbage collection. */
export const gc = runInNewContext("gc") as () => void;

/** Whether `ref`'s target is collected within 10 rounds of the event loop and a full GC. */
export async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
    if (ref.deref() === undefined) return true;
  }
  return false;
}
