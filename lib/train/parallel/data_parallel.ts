/**
 * Data parallelism over Deno Workers: one TensorFlow.js engine per worker (the wasm engine is single-threaded,
 * so this is how a run uses every core), the batch split along its first axis, gradients averaged through a
 * SharedArrayBuffer every step (see worker.ts). With N workers and total batch B the update is the one a single
 * engine makes on the whole batch (up to float rounding; tests/parallel_test.ts). The same mechanism is how one
 * run could later spread over several devices.
 */
import type { ConcreteBackend, MatMulChoice } from "../../accel/backend.ts";
import { noWeightDecay, readAll } from "../optim.ts";
import type { Loadable } from "../../io/checkpoint.ts";
import { fastOps } from "../../accel/switch.ts";
import type { TrainableModel } from "../step.ts";
import {
  BARRIER_BYTES,
  type LossSpec,
  type OptimSpec,
  type Reply,
  type Request,
  type Shard,
  type Traffic,
  type WorkerState,
} from "./protocol.ts";
import type { MicroBatches } from "../step.ts";
import { OutOfMemoryError } from "../memory.ts";

export interface DataParallelOptions {
  workers: number;
  backend: ConcreteBackend;
  /** Optimiser (default AdamW as DeiT: weight decay 0.05, the no-decay rule). */
  optim?: Partial<Omit<OptimSpec, "noDecay">>;
  /** Training loss (default cross-entropy on both heads). */
  loss?: LossSpec;
  clipGrad?: number;
  /** EMA decay of the weights, kept on rank 0; 0/undefined = none. */
  emaDecay?: number;
  /** Frozen teacher replicated into every worker (its forward runs there, on the worker's shard). */
  teacher?: {
    name: string;
    overrides?: Record<string, unknown>;
    model: Loadable;
    /** Keep its logits in a cache folder shared with other runs (distill/teacher_cache.ts). */
    cache?: { dir: string; numClasses: number };
  };
  seed?: number;
  /** Workers keep tfjs-backend-wasm's stock kernels (before/after measurements only). */
  stockKernels?: boolean;
  /** wasm: matmuls through BLAS or XNNPACK (default: BLAS when one loads). */
  matmul?: MatMulChoice;
  /** Measurement only: one worker exchanges gradients through the host as several do (bench/gpu_traffic.ts). */
  hostExchange?: boolean;
  /** Count host↔device bytes per engine (`lastTraffic`). */
  countTraffic?: boolean;
}

export class DataParallel {
  readonly size: number;
  readonly #workers: Worker[];
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  #nextId = 1;

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    this.size = workers.length;
  }

  /**
   * Start `opts.workers` replicas of `model` (its current weights and buffers), each with its own optimiser.
   * `student` names the registered model and the overrides it was built with (workers build their own).
   */
  static async start(
    model: TrainableModel & Loadable,
    student: { name: string; overrides: Record<string, unknown> },
    opts: DataParallelOptions,
  ): Promise<DataParallel> {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new Error(`workers must be ≥ 1`);
    const params = await readAll(model.params), buffers = await readAll(model.buffers ?? new Map());
    const weights = { ...params, ...buffers };
    const count = (r: Record<string, Float32Array>) => Object.values(r).reduce((a, w) => a + w.length, 0);
    const numParams = count(params), numBuffers = count(buffers);
    const shapes = model.torchShapes();
    const noDecay = [...shapes].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k);
    const teacher = opts.teacher
      ? {
        name: opts.teacher.name,
        overrides: opts.teacher.overrides ?? {},
        state: {
          ...(await readAll(opts.teacher.model.params)),
          ...(await readAll(opts.teacher.model.buffers ?? new Map())),
        },
        cache: opts.teacher.cache,
      }
      : undefined;
    const sab = new SharedArrayBuffer(opts.workers * (numParams + numBuffers) * 4 + BARRIER_BYTES);
    const workers = Array.from(
      { length: opts.workers },
      () => new Worker(new URL("./worker.ts", import.meta.url), { type: "module" }),
    );
    const dp = new DataParallel(workers);
    try {
      await Promise.all(workers.map((w, rank) =>
        new Promise<void>((resolve, reject) => {
          w.onmessage = (e: MessageEvent<Reply>) => {
            if (e.data.type === "ready") {
              w.onmessage = (ev: MessageEvent<Reply>) => dp.#onReply(ev.data);
              resolve();
            } else if (e.data.type === "error") {
              reject(new Error(`worker ${rank} failed to start: ${e.data.message}`));
            }
          };
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(`worker ${rank}: ${e.message}`));
          };
          w.postMessage(
            {
              type: "init",
              rank,
              worldSize: opts.workers,
              backend: opts.backend,
              stockKernels: opts.stockKernels ?? false,
              matmul: opts.matmul,
              student,
              fastOps: fastOps(),
              seed: opts.seed ?? 0,
              weights,
              optim: { type: "adamw", weightDecay: 0.05, ...opts.optim, noDecay },
              loss: opts.loss ?? { kind: "ce-both-heads" },
              clipGrad: opts.clipGrad ?? 0,
              emaDecay: opts.emaDecay ?? 0,
              teacher,
              sab,
              numParams,
              numBuffers,
              hostExchange: opts.hostExchange,
              countTraffic: opts.countTraffic,
            } satisfies Request,
          );
        })
      ));
    } catch (e) {
      await dp.close(0);
      throw e;
    }
    return dp;
  }

  #onReply(r: Reply) {
    const id = "id" in r ? r.id : undefined;
    const p = id !== undefined ? this.#pending.get(id) : undefined;
    if (!p) {
      if (r.type === "error") console.error(`worker error: ${r.message}`);
      return;
    }
    this.#pending.delete(id!);
    if (r.type === "error") {
      const oom = r.message.startsWith("OutOfMemoryError: ");
      p.reject(
        oom ? new OutOfMemoryError(r.message.slice("OutOfMemoryError: ".length)) : new Error(r.message),
      );
    } else p.resolve(r);
  }

  #ask(rank: number, req: Request & { id: number }, transfer: Transferable[] = []): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.#pending.set(req.id, { resolve, reject });
      this.#workers[rank].postMessage(req, transfer);
    });
  }

  /** Split `[B, ...]` into `size` contiguous shards (the first `B mod size` one sample larger). */
  #shards(
    x: Float32Array,
    shape: [number, number, number, number],
    labels: Int32Array,
    target?: Float32Array,
  ): Shard[] {
    const [B, H, W, C] = shape;
    const per = H * W * C;
    const classes = target ? target.length / B : 0;
    const out: Shard[] = [];
    let start = 0;
    for (let r = 0; r < this.size; r++) {
      const n = Math.floor(B / this.size) + (r < B % this.size ? 1 : 0);
      out.push({
        x: x.slice(start * per, (start + n) * per),
        shape: [n, H, W, C],
        labels: labels.slice(start, start + n),
        target: target?.slice(start * classes, (start + n) * classes),
      });
      start += n;
    }
    return out.filter((s) => s.shape[0] > 0);
  }

  /** Micro-batches each worker used in its last step (gradient accumulation when > 1). */
  lastMicroBatches = 1;
  /** With a teacher cache: whether every shard of the last step had its teacher logits from it. */
  lastTeacherCached = false;
  /** With `countTraffic`: bytes rank 0 has uploaded and read back so far. */
  lastTraffic?: Traffic;

  /**
   * One optimiser step on the whole batch. With `readLoss` (the default) it returns the mean loss of this step
   * and of every earlier step whose loss was not read yet, oldest first; without it the losses stay on the
   * device and it returns [] — a GPU engine then copies nothing back per step (read every few steps instead).
   */
  async step(
    x: Float32Array,
    shape: [number, number, number, number],
    labels: Int32Array,
    lr: number,
    microBatches: MicroBatches = "auto",
    target?: Float32Array,
    readLoss = true,
  ): Promise<number[]> {
    if (shape[0] < this.size) throw new Error(`batch ${shape[0]} is smaller than the ${this.size} workers`);
    const shards = this.#shards(x, shape, labels, target);
    const replies = await Promise.all(shards.map((shard, rank) =>
      this.#ask(
        rank,
        { type: "step", id: this.#nextId++, shard, lr, totalBatch: shape[0], microBatches, readLoss },
        [shard.x.buffer as ArrayBuffer, shard.labels.buffer as ArrayBuffer],
      )
    ));
    if (replies[0].type === "step") this.lastTraffic = replies[0].traffic;
    this.lastTeacherCached = replies.every((r) => r.type === "step" && r.teacherCached === true);
    this.lastMicroBatches = Math.max(...replies.map((r) => (r.type === "step" ? r.microBatches : 1)));
    return sumLosses(replies.map((r) => (r.type === "step" ? r.losses : [])));
  }

  /** The mean losses of the steps not read back yet, oldest first. */
  async readLosses(): Promise<number[]> {
    const replies = await Promise.all(
      this.#workers.map((_, r) => this.#ask(r, { type: "losses", id: this.#nextId++ })),
    );
    return sumLosses(replies.map((r) => (r.type === "losses" ? r.losses : [])));
  }

  /** Eval-mode logits `[B, classes]` (flat) of `head`, the batch split over the workers. */
  async predict(
    x: Float32Array,
    shape: [number, number, number, number],
    head: "cls" | "dist" | "both" = "both",
  ): Promise<Float32Array> {
    const shards = this.#shards(x, shape, new Int32Array(shape[0]));
    const replies = await Promise.all(
      shards.map((shard, rank) =>
        this.#ask(rank, { type: "predict", id: this.#nextId++, shard, head }, [shard.x.buffer as ArrayBuffer])
      ),
    );
    const parts = replies.map((r) => (r.type === "predict" ? r.logits : new Float32Array()));
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** The replicas' current weights (internal layout), from worker 0. */
  async weights(): Promise<Record<string, Float32Array>> {
    return (await this.getState())[0].weights;
  }

  /** Every rank's state (weights, optimiser, EMA on rank 0, drop-path generator), for a checkpoint. */
  async getState(): Promise<WorkerState[]> {
    const replies = await Promise.all(
      this.#workers.map((_, r) => this.#ask(r, { type: "getState", id: this.#nextId++ })),
    );
    return replies.map((r) => {
      if (r.type !== "getState") throw new Error("unexpected reply");
      return r.state;
    });
  }

  /** Restore every rank (from `getState`'s output; a single state is given to every rank). */
  async setState(states: WorkerState[]): Promise<void> {
    await Promise.all(
      this.#workers.map((_, r) =>
        this.#ask(r, { type: "setState", id: this.#nextId++, state: states[Math.min(r, states.length - 1)] })
      ),
    );
  }

  /**
   * Stop the workers (their engines and memory go with them): each first frees its engine and device and says
   * so (at most `graceMs`), then is terminated.
   */
  async close(graceMs = 5000): Promise<void> {
    const bye = this.#workers.map((_, r) =>
      Promise.race([
        this.#ask(r, { type: "close", id: this.#nextId++ }).catch(() => {}),
        new Promise((res) => setTimeout(res, graceMs)),
      ])
    );
    await Promise.all(bye);
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.reject(new Error("data-parallel workers closed"));
    this.#pending.clear();
  }
}

/** Per-step batch losses from every worker's shares (each worker's list is in step order). */
function sumLosses(perWorker: number[][]): number[] {
  const n = Math.max(0, ...perWorker.map((l) => l.length));
  return Array.from({ length: n }, (_, i) => perWorker.reduce((a, l) => a + (l[i] ?? 0), 0));
}
