/**
 * Throughput measurement with the paper's method: inference is forward only, float32, after warm-up, the mean
 * time of one batch over `runs` runs, images/s = batch / time; training is the mean time of a full optimiser
 * step (forward, loss, backward, AdamW update). Data loading is excluded (inputs are random tensors).
 */
import * as tf from "@tensorflow/tfjs";
import { fastOps, withFastOps } from "../accel/switch.ts";
import { buildVit } from "../models/registry.ts";
import { AdamW, noWeightDecay } from "./optim.ts";
import { type MicroBatches, trainStep } from "./step.ts";
import { DataParallel } from "./parallel/data_parallel.ts";
import { type ConcreteBackend, type MatMulChoice, matmulKernel } from "../accel/backend.ts";

export interface BenchOptions {
  model: string;
  mode: "infer" | "train";
  batchSize: number;
  /** Resolution; default the model's. */
  imgSize?: number;
  runs?: number;
  warmup?: number;
  /**
   * The op switch (lib/accel/switch.ts) for this measurement: fast op implementations or the reference layers
   * (before/after measurements); default: the switch as it is.
   */
  fastOps?: boolean;
  /** Gradient accumulation: micro-batches per engine (training only); "auto": what the wasm heap needs. */
  microBatches?: MicroBatches;
  /** Data-parallel workers (one engine each); 1 = this thread. */
  workers?: number;
  /** Backend of the workers (the caller's active backend otherwise). */
  backend?: ConcreteBackend;
  stockKernels?: boolean;
  /** wasm: matmuls through BLAS or XNNPACK (default: BLAS when one loads). */
  matmul?: MatMulChoice;
  /** Called after each timed run with its milliseconds. */
  onRun?: (i: number, ms: number) => void;
}

export interface BenchResult {
  model: string;
  mode: "infer" | "train";
  backend: string;
  batch_size: number;
  img_size: number;
  images_per_s: number;
  /** Mean milliseconds of one batch (inference) or one optimiser step (training). */
  step_ms: number;
  /** Fastest and slowest run, ms. */
  min_ms: number;
  max_ms: number;
  runs: number;
  /** Which op implementations ran (the op switch during the measurement). */
  impl: "fast" | "reference";
  micro_batches: number;
  workers: number;
  /** wasm: which kernel ran the matrix products ("blas (library)" or "xnnpack (why)"). */
  matmul?: string;
  peak_rss_mb: number;
}

/** Peak resident set size of this process so far (Linux VmHWM), MB. */
export function peakRssMb(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/^VmHWM:\s+(\d+) kB/m);
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** Measures one model (see the header); the op switch is set to `o.fastOps` meanwhile, workers included. */
export function benchmark(o: BenchOptions): Promise<BenchResult> {
  return withFastOps(o.fastOps ?? fastOps(), () => measure(o));
}

async function measure(o: BenchOptions): Promise<BenchResult> {
  const runs = o.runs ?? 30,
    warmup = o.warmup ?? 2,
    micro = o.microBatches ?? "auto";
  let usedMicro = 1;
  const overrides = o.imgSize ? { imgSize: o.imgSize } : {};
  const model = buildVit(o.model, overrides, 0);
  const S = model.config.imgSize, B = o.batchSize;
  const x = tf.randomNormal([B, S, S, model.config.inChans], 0, 1, "float32", 1) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: B }, (_, i) => i % model.config.numClasses), "int32");
  const shapes = model.torchShapes();
  const opt = o.mode === "train"
    ? new AdamW(model.params, {
      noDecay: new Set([...shapes].filter(([k, s]) => noWeightDecay(k, s)).map(([k]) => k)),
    })
    : undefined;
  const workers = o.workers ?? 1;
  const dp = workers > 1
    ? await DataParallel.start(model, { name: o.model, overrides }, {
      workers,
      backend: o.backend ?? tf.getBackend() as ConcreteBackend,
      stockKernels: o.stockKernels,
      matmul: o.matmul,
    })
    : undefined;
  const xData = (await x.data()) as Float32Array, yData = (await labels.data()) as Int32Array;
  const shape: [number, number, number, number] = [B, S, S, model.config.inChans];
  const once = async () => {
    if (dp) {
      if (opt) {
        await dp.step(xData.slice(), shape, yData.slice(), 1e-4, micro);
        usedMicro = dp.lastMicroBatches;
      } else await dp.predict(xData.slice(), shape);
    } else if (opt) {
      const { loss, microBatches } = await trainStep(model, opt, x, { labels }, {
        lr: 1e-4,
        microBatches: micro,
      });
      // Reading the loss waits for the step to finish (a GPU backend runs asynchronously).
      await loss.data();
      loss.dispose();
      usedMicro = microBatches;
    } else {
      const y = model.predict(x);
      await y.data();
      y.dispose();
    }
  };
  try {
    for (let i = 0; i < warmup; i++) await once();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await once();
      times.push(performance.now() - t0);
      o.onRun?.(i, times[i]);
    }
    const mean = times.reduce((a, b) => a + b, 0) / runs;
    return {
      model: o.model,
      mode: o.mode,
      backend: tf.getBackend(),
      batch_size: B,
      img_size: S,
      images_per_s: (B / mean) * 1000,
      step_ms: mean,
      min_ms: Math.min(...times),
      max_ms: Math.max(...times),
      runs,
      impl: fastOps() ? "fast" : "reference",
      micro_batches: usedMicro,
      workers,
      ...matmulKernel(tf.getBackend()),
      peak_rss_mb: peakRssMb(),
    };
  } finally {
    await dp?.close();
    opt?.dispose();
    tf.dispose([x, labels]);
    model.dispose();
  }
}
