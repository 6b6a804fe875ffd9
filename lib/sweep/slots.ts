/**
 * Where a sweep's runs execute: CPU slots (each run gets ⌊cores / slots⌋ wasm engines) or GPUs (one run per
 * GPU), from the `--devices` list.
 */

/** Where a run executes. */
export interface Slot {
  /** "cpu0", "cpu1", … or "gpu0", "gpu3", … */
  name: string;
  kind: "cpu" | "gpu";
  /** CPU slots: wasm engines per run (`--workers`). */
  workers?: number;
  /** GPU slots: the CUDA device id (nvidia-smi's index). */
  gpu?: string;
  /** GPU slots: its PCI address when nvidia-smi gives it (WebGPU's adapter choice uses it; lib/accel/backend.ts). */
  busId?: string;
}

export class SweepError extends Error {
  // runMain prints a UsageError as one line with exit code 2.
  override name = "UsageError";
}

/**
 * Slots from a device list: `cpu` (⌊cores/2⌋ slots, at least 2 when there are 2 cores, capped by
 * maxParallel), `cpu:N` (N slots), or GPU ids `0,1,2,3` (one slot each; at most maxParallel of them).
 */
export function parseDevices(
  spec: string,
  opts: { maxParallel?: number; cores?: number; busIds?: string[] } = {},
): Slot[] {
  const cores = opts.cores ?? navigator.hardwareConcurrency ?? 1;
  const max = opts.maxParallel;
  const s = spec.trim();
  const cpu = s.match(/^cpu(?::(\d+))?$/);
  if (cpu) {
    let n = cpu[1] !== undefined
      ? Number(cpu[1])
      : max ?? Math.min(cores, Math.max(2, Math.floor(cores / 2)));
    if (!Number.isInteger(n) || n < 1) throw new SweepError(`--devices ${spec}: need at least one cpu slot`);
    if (max !== undefined) n = Math.min(n, max);
    const workers = Math.max(1, Math.floor(cores / n));
    return Array.from({ length: n }, (_, i) => ({ name: `cpu${i}`, kind: "cpu" as const, workers }));
  }
  const ids = s.split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (ids.length === 0 || ids.some((x) => !/^\d+$/.test(x))) {
    throw new SweepError(`--devices '${spec}': expected cpu, cpu:N or GPU ids like 0,1,2,3`);
  }
  if (new Set(ids).size !== ids.length) throw new SweepError(`--devices '${spec}': a GPU is listed twice`);
  const use = max !== undefined ? ids.slice(0, max) : ids;
  return use.map((id) => {
    const busId = opts.busIds?.[Number(id)];
    return { name: `gpu${id}`, kind: "gpu" as const, gpu: id, ...(busId ? { busId } : {}) };
  });
}

/** The free slots of a sweep, handed out in the order the slots were given. */
export class SlotPool {
  readonly #slots: Slot[];
  #free: Slot[];

  constructor(slots: Slot[]) {
    this.#slots = slots;
    this.#free = [...slots];
  }

  get empty(): boolean {
    return this.#free.length === 0;
  }

  /** The first free slot (check {@link empty} first). */
  take(): Slot {
    return this.#free.shift()!;
  }

  /** A slot is free again. */
  give(slot: Slot): void {
    this.#free.push(slot);
    this.#free.sort((a, b) => this.#slots.indexOf(a) - this.#slots.indexOf(b));
  }
}
