/**
 * The training step, one function for every engine (a data-parallel worker, a test, a benchmark): the frozen
 * teacher's logits → forward, loss, backward (optionally over several micro-batches whose gradients are summed —
 * gradient accumulation) → the exchange between data-parallel engines, if any → clipping → optimiser update →
 * EMA. Everything inside tf.tidy; nothing leaks; nothing is read back.
 */
import * as tf from "@tensorflow/tfjs";
import type { Logits } from "../vit/model.ts";
import type { ViTConfig } from "../vit/config.ts";
import type { LossFn, Targets, Teacher } from "../distill/losses.ts";
import { clipGradNorm, type Ema, type Optimizer } from "./optim.ts";
import { fitMicroBatches, oomMessage, OutOfMemoryError } from "./memory.ts";
import { heapLimitBytes, isHeapExhausted } from "../accel/engine.ts";

/** What a training step needs of a model (a ViT/DeiT or a RegNet). */
export interface TrainableModel {
  readonly params: Map<string, tf.Variable>;
  readonly config: object;
  forward(x: tf.Tensor4D, opts: { training?: boolean }): Logits;
}

/** The ViT config of a model, when it is a ViT (the heap estimate is fitted to ViTs). */
function vitConfigOf(model: TrainableModel): ViTConfig | undefined {
  return "embedDim" in model.config ? model.config as ViTConfig : undefined;
}

/** Micro-batches per step: a number, or "auto" (as many as the wasm heap needs; 1 on other backends). */
export type MicroBatches = number | "auto";

/** Cross-entropy on the class head, and on the distillation head against the same labels when it exists. */
export const crossEntropyBothHeads: LossFn = (out, { labels }) => {
  const ce = (z: tf.Tensor2D) => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, z.shape[1]), z) as tf.Scalar;
  return out.dist ? tf.mul(tf.add(ce(out.cls), ce(out.dist)), 0.5) : ce(out.cls);
};

/** Rows [start, start + n) of every target tensor. */
function sliceTargets(t: Targets, start: number, n: number): Targets {
  const rows = <T extends tf.Tensor>(x: T | undefined): T | undefined =>
    x === undefined ? undefined : tf.slice(x, start, n) as T;
  return { labels: rows(t.labels)!, soft: rows(t.soft), teacher: rows(t.teacher) };
}

export interface GradResult {
  /** Mean loss over the batch, on the device (the caller reads it when it wants it, and disposes it). */
  loss: tf.Scalar;
  /** Mean gradient over the batch, per parameter name (caller disposes). */
  grads: Map<string, tf.Tensor>;
  /** Micro-batches actually used (gradient accumulation when > 1). */
  microBatches: number;
}

/**
 * Loss and gradients of `model` on `x` `[B, H, W, C]` / `targets`, in `microBatches` equal pieces whose
 * gradients are averaged (identical maths to one pass, less memory).
 */
export function computeGrads(
  model: TrainableModel,
  x: tf.Tensor4D,
  targets: Targets,
  lossFn: LossFn,
  micro: MicroBatches = "auto",
): GradResult {
  const B = x.shape[0];
  const microBatches = micro === "auto"
    ? (heapLimitBytes(tf.getBackend()) !== undefined && vitConfigOf(model)
      ? fitMicroBatches(vitConfigOf(model)!, B)
      : 1)
    : micro;
  if (B % microBatches !== 0) {
    throw new Error(`batch ${B} does not split into ${microBatches} equal micro-batches`);
  }
  const mb = B / microBatches;
  const names = [...model.params.keys()];
  const vars = names.map((n) => model.params.get(n)!);
  let total: tf.Scalar | undefined;
  const sums = new Map<string, tf.Tensor>();
  for (let i = 0; i < microBatches; i++) {
    let step;
    try {
      step = tf.tidy(() => {
        const xi = microBatches === 1 ? x : tf.slice(x, [i * mb, 0, 0, 0], [mb, -1, -1, -1]);
        const yi = microBatches === 1 ? targets : sliceTargets(targets, i * mb, mb);
        return tf.variableGrads(() => lossFn(model.forward(xi, { training: true }), yi), vars);
      });
    } catch (e) {
      // A failed allocation aborts the wasm engine; say what would fit instead of a stack of internals.
      if (isHeapExhausted(e)) {
        const vc = vitConfigOf(model);
        throw new OutOfMemoryError(
          vc
            ? oomMessage(vc, mb)
            : `out of memory: a training step of ${mb} images does not fit in the wasm heap`,
        );
      }
      throw e;
    }
    const { value, grads } = step;
    if (total) {
      const prev = total;
      total = tf.add(prev, value);
      tf.dispose([prev, value]);
    } else total = value;
    names.forEach((n, j) => {
      const g = grads[vars[j].name];
      const prev = sums.get(n);
      if (prev) {
        sums.set(n, tf.add(prev, g));
        prev.dispose();
        g.dispose();
      } else sums.set(n, g);
    });
  }
  if (microBatches > 1) {
    for (const [n, g] of sums) {
      sums.set(n, tf.div(g, microBatches));
      g.dispose();
    }
    const sum = total!;
    total = tf.div(sum, microBatches);
    sum.dispose();
  }
  return { loss: total!, grads: sums, microBatches };
}

export interface UpdateOptions {
  lr: number;
  /** Global-norm gradient clipping; 0/undefined = off (DeiT). */
  clipGrad?: number;
  /** EMA of the weights, updated after the optimiser. */
  ema?: Ema;
}

/**
 * The update after the gradients: clipping → optimiser → EMA, all on the device (nothing is read back). Disposes
 * `grads`; returns the norm before clipping when clipping is on (the caller disposes it).
 */
export function applyUpdate(
  opt: Optimizer,
  grads: Map<string, tf.Tensor>,
  params: Map<string, tf.Variable>,
  o: UpdateOptions,
): tf.Scalar | undefined {
  const gradNorm = o.clipGrad && o.clipGrad > 0 ? clipGradNorm(grads, o.clipGrad) : undefined;
  opt.apply(grads, o.lr);
  tf.dispose([...grads.values()]);
  o.ema?.update(params);
  return gradNorm;
}

export interface StepOptions extends UpdateOptions {
  /** The training loss (default: cross-entropy on both heads). */
  lossFn?: LossFn;
  microBatches?: MicroBatches;
  /** Runs frozen, in eval mode, on the same (augmented) batch; its logits join the targets. */
  teacher?: Teacher;
  /**
   * Between the gradients and the update: the data-parallel exchange (lib/train/parallel/worker.ts), which
   * takes this engine's gradients (and disposes them) and returns the whole batch's. None: this engine's
   * gradients are the update's (one engine; nothing leaves the device).
   */
  exchange?: (grads: Map<string, tf.Tensor>) => Promise<Map<string, tf.Tensor>>;
}

export interface StepResult {
  /** The batch's mean loss, on the device (read back only when the caller wants it; the caller disposes it). */
  loss: tf.Scalar;
  /** Micro-batches used (gradient accumulation when > 1). */
  microBatches: number;
}

/**
 * The training step, the one every engine runs: the teacher's logits, gradients of the loss, (the exchange
 * between data-parallel engines,) clipping, the optimiser update, EMA. Nothing is read back: the loss stays on
 * the device for the caller.
 */
export async function trainStep(
  model: TrainableModel,
  opt: Optimizer,
  x: tf.Tensor4D,
  targets: Targets,
  o: StepOptions,
): Promise<StepResult> {
  // The teacher's forward runs outside the gradient computation: no gradient can reach it.
  const teacherLogits = o.teacher ? o.teacher.predict(x) : undefined;
  let g: GradResult;
  try {
    const t = teacherLogits ? { ...targets, teacher: teacherLogits } : targets;
    g = computeGrads(model, x, t, o.lossFn ?? crossEntropyBothHeads, o.microBatches ?? "auto");
  } finally {
    teacherLogits?.dispose();
  }
  try {
    const update = o.exchange ? await o.exchange(g.grads) : g.grads;
    applyUpdate(opt, update, model.params, o)?.dispose();
  } catch (e) {
    g.loss.dispose();
    throw e;
  }
  return { loss: g.loss, microBatches: g.microBatches };
}
