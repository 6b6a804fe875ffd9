/**
 * One optimisation step: forward, loss, backward (optionally over several micro-batches whose gradients are
 * summed — gradient accumulation), optimiser update. Everything inside tf.tidy; nothing leaks.
 */
import * as tf from "@tensorflow/tfjs";
import type { Logits, VisionTransformer } from "../vit/model.ts";
import type { AdamW } from "./optim.ts";

/** A loss on the model's outputs for a batch: returns a scalar (mean over the batch). */
export type LossFn = (out: Logits, labels: tf.Tensor1D) => tf.Scalar;

/** Cross-entropy on the class head, and on the distillation head against the same labels when it exists. */
export const crossEntropyBothHeads: LossFn = (out, labels) => {
  const ce = (z: tf.Tensor2D) => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, z.shape[1]), z) as tf.Scalar;
  return out.dist ? tf.mul(tf.add(ce(out.cls), ce(out.dist)), 0.5) : ce(out.cls);
};

export interface GradResult {
  /** Mean loss over the batch. */
  loss: number;
  /** Mean gradient over the batch, per parameter name (caller disposes). */
  grads: Map<string, tf.Tensor>;
}

/**
 * Loss and gradients of `model` on `x` `[B, H, W, C]` / `labels` `[B]`, in `microBatches` equal pieces whose
 * gradients are averaged (identical maths to one pass, less memory).
 */
export function computeGrads(
  model: VisionTransformer,
  x: tf.Tensor4D,
  labels: tf.Tensor1D,
  lossFn: LossFn,
  microBatches = 1,
): GradResult {
  const B = x.shape[0];
  if (B % microBatches !== 0) {
    throw new Error(`batch ${B} does not split into ${microBatches} equal micro-batches`);
  }
  const mb = B / microBatches;
  const names = [...model.params.keys()];
  const vars = names.map((n) => model.params.get(n)!);
  let total = 0;
  const sums = new Map<string, tf.Tensor>();
  for (let i = 0; i < microBatches; i++) {
    const { value, grads } = tf.tidy(() => {
      const xi = microBatches === 1 ? x : tf.slice(x, [i * mb, 0, 0, 0], [mb, -1, -1, -1]);
      const yi = microBatches === 1 ? labels : tf.slice(labels, [i * mb], [mb]);
      return tf.variableGrads(() => lossFn(model.forward(xi, { training: true }), yi), vars);
    });
    total += value.dataSync()[0];
    value.dispose();
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
  }
  return { loss: total / microBatches, grads: sums };
}

/** One full step: gradients, then the optimiser update at `lr`. Returns the mean loss. */
export function trainStep(
  model: VisionTransformer,
  opt: AdamW,
  x: tf.Tensor4D,
  labels: tf.Tensor1D,
  lr: number,
  lossFn: LossFn = crossEntropyBothHeads,
  microBatches = 1,
): number {
  const { loss, grads } = computeGrads(model, x, labels, lossFn, microBatches);
  if (!Number.isFinite(loss)) {
    tf.dispose([...grads.values()]);
    throw new Error(`loss is ${loss}: training diverged (lower the learning rate or check the data)`);
  }
  opt.apply(grads, lr);
  tf.dispose([...grads.values()]);
  return loss;
}
