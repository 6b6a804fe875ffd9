/**
 * One optimisation step: forward, loss, backward (optionally over several micro-batches whose gradients are
 * summed — gradient accumulation), optimiser update. Everything inside tf.tidy; nothing leaks.
 */
import * as tf from "@tensorflow/tfjs";
import type { Logits } from "../vit/model.ts";
import type { Classifier } from "../models/classifier.ts";
import type { ViTConfig } from "../vit/config.ts";

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
import { clipGradNorm, type Ema, type Optimizer } from "./optim.ts";
import { fitMicroBatches, isWasmAbort, oomMessage, OutOfMemoryError } from "./memory.ts";

/** Micro-batches per step: a number, or "auto" (as many as the wasm heap needs; 1 on other backends). */
export type MicroBatches = number | "auto";

/** What a batch is supervised with; every tensor's first axis is the batch. */
export interface Targets {
  /** Hard labels `[B]` int32. */
  labels: tf.Tensor1D;
  /** Soft targets `[B, C]` (Mixup/CutMix with label smoothing), when the batch was mixed. */
  soft?: tf.Tensor2D;
  /** A frozen teacher's logits `[B, C]` on the same (augmented) batch, for distillation. */
  teacher?: tf.Tensor2D;
}

/** A loss on the model's outputs for a batch: returns a scalar (mean over the batch). */
export type LossFn = (out: Logits, t: Targets) => tf.Scalar;

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
    ? (tf.getBackend() === "wasm" && vitConfigOf(model) ? fitMicroBatches(vitConfigOf(model)!, B) : 1)
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
      if (tf.getBackend() === "wasm" && isWasmAbort(e)) {
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

/** A frozen model that predicts logits in eval mode (any registered model can teach). */
export type Teacher = Classifier;

export interface StepOptions extends UpdateOptions {
  lossFn?: LossFn;
  microBatches?: MicroBatches;
  /** Runs frozen, in eval mode, on the same (augmented) batch; its logits join the targets. */
  teacher?: Teacher;
}

/**
 * One full step on one engine: (teacher logits,) gradients, clipping, the optimiser update, EMA — the same
 * pieces a data-parallel worker runs. Reads the loss back (asynchronously: a GPU backend has no synchronous read)
 * and returns it.
 */
export async function trainStep(
  model: TrainableModel,
  opt: Optimizer,
  x: tf.Tensor4D,
  targets: Targets,
  o: StepOptions,
): Promise<number> {
  // The teacher's forward runs outside the gradient computation: no gradient can reach it.
  const teacherLogits = o.teacher ? o.teacher.predict(x) : undefined;
  try {
    const t = teacherLogits ? { ...targets, teacher: teacherLogits } : targets;
    const { loss, grads } = computeGrads(
      model,
      x,
      t,
      o.lossFn ?? crossEntropyBothHeads,
      o.microBatches ?? "auto",
    );
    const value = (await loss.data())[0];
    loss.dispose();
    if (!Number.isFinite(value)) {
      tf.dispose([...grads.values()]);
      throw new Error(`loss is ${value}: training diverged (lower the learning rate or check the data)`);
    }
    applyUpdate(opt, grads, model.params, o)?.dispose();
    return value;
  } finally {
    teacherLogits?.dispose();
  }
}
