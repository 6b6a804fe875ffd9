/**
 * What the layers above need to know of a backend's engine, so that none of them names one: how many engines a
 * machine runs, how often a training loop reads its loss back, the wasm heap's size and what running out of it
 * looks like, and a counter of the bytes that cross between host and device.
 */
import * as tf from "@tensorflow/tfjs";

/** Usable wasm heap: 4 GiB (wasm32) less a margin for fragmentation. */
export const WASM_HEAP_LIMIT_BYTES = 3.5 * 2 ** 30;

/** Engines of this backend are single-threaded: run one per core (wasm, cpu); otherwise one (a GPU). */
export function onePerCore(backend: string): boolean {
  return backend === "wasm" || backend === "cpu";
}

/** The memory one engine can address where it is bounded below the machine's (wasm32); undefined elsewhere. */
export function heapLimitBytes(backend: string): number | undefined {
  return backend === "wasm" ? WASM_HEAP_LIMIT_BYTES : undefined;
}

/** Steps between reads of the training loss: each step where a read costs nothing, every 10 on a GPU. */
export function lossReadInterval(backend: string): number {
  return onePerCore(backend) ? 1 : 10;
}

/** Is `e` what a wasm engine throws when an allocation fails (it aborts)? */
export function isWasmAbort(e: unknown): boolean {
  const msg = e instanceof Error ? `${e.name} ${e.message}` : String(e);
  return /Aborted\(|RuntimeError|out of memory|Cannot enlarge memory/i.test(msg);
}

/** Is `e` the active engine running out of memory (a wasm engine aborting on a failed allocation)? */
export function isHeapExhausted(e: unknown): boolean {
  return tf.getBackend() === "wasm" && isWasmAbort(e);
}

/** Bytes uploaded to and read back from the device so far. */
export interface Traffic {
  up: number;
  down: number;
}

/** Counts every upload (`write`) and read-back (`read`, `readSync`) of the active backend from now on, in bytes. */
export function countTraffic(): Traffic {
  const t: Traffic = { up: 0, down: 0 };
  const bytes = (v: unknown) => (ArrayBuffer.isView(v) ? v.byteLength : Array.isArray(v) ? 4 * v.length : 0);
  const b = tf.backend() as unknown as {
    write: (values: unknown, ...rest: unknown[]) => unknown;
    read: (id: unknown) => Promise<unknown>;
    readSync: (id: unknown) => unknown;
  };
  const [write, read, readSync] = [b.write.bind(b), b.read.bind(b), b.readSync.bind(b)];
  b.write = (values, ...rest) => {
    t.up += bytes(values);
    return write(values, ...rest);
  };
  b.read = async (id) => {
    const v = await read(id);
    t.down += bytes(v);
    return v;
  };
  b.readSync = (id) => {
    const v = readSync(id);
    t.down += bytes(v);
    return v;
  };
  return t;
}
