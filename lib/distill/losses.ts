/**
 * Losses as pure functions with named arguments (big_vision's habit): the base criteria DeiT trains with and
 * DeiT's distillation loss (facebookresearch/deit losses.py). All return the batch mean as a scalar.
 * Logits are `[B, C]`; labels `[B]` int32; soft targets `[B, C]` rows summing to 1.
 */
import * as tf from "@tensorflow/tfjs";
import type { Logits } from "../vit/model.ts";
import type { Classifier } from "../models/classifier.ts";

/** What a batch is supervised with; every tensor's first axis is the batch. */
export interface Targets {
  /** Hard labels `[B]` int32. */
  labels: tf.Tensor1D;
  /** Soft targets `[B, C]` (Mixup/CutMix with label smoothing), when the batch was mixed. */
  soft?: tf.Tensor2D;
  /** A frozen teacher's logits `[B, C]` on the same (augmented) batch, for distillation. */
  teacher?: tf.Tensor2D;
}

/** A training loss on the model's outputs for a batch: returns a scalar (mean over the batch). */
export type LossFn = (out: Logits, t: Targets) => tf.Scalar;

/** A frozen model that predicts logits in eval mode (any registered model can teach). */
export type Teacher = Classifier;

/** Cross-entropy with hard labels: mean over the batch of −log softmax(z)[y]. */
export function crossEntropy({ logits, labels }: { logits: tf.Tensor2D; labels: tf.Tensor1D }): tf.Scalar {
  return tf.tidy(() =>
    softTargetCrossEntropy({ logits, target: tf.oneHot(labels, logits.shape[1]) as tf.Tensor2D })
  );
}

/**
 * Label-smoothing cross-entropy as timm's LabelSmoothingCrossEntropy: (1 − s)·NLL + s·mean over classes of
 * −log p (equivalently, CE to the target (1 − s)·onehot + s/C).
 */
export function labelSmoothingCrossEntropy(
  { logits, labels, smoothing }: { logits: tf.Tensor2D; labels: tf.Tensor1D; smoothing: number },
): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(labels, logits.shape[1])), -1));
    const smooth = tf.neg(tf.mean(logp, -1));
    return tf.mean(tf.add(tf.mul(nll, 1 - smoothing), tf.mul(smooth, smoothing)));
  });
}

/** Soft-target cross-entropy (timm SoftTargetCrossEntropy): mean over the batch of Σ −t·log softmax(z). */
export function softTargetCrossEntropy(
  { logits, target }: { logits: tf.Tensor2D; target: tf.Tensor2D },
): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)), -1))));
}

/** Label-smoothed one-hot targets: off = s/C, on = 1 − s + s/C (timm's smoothing for Mixup). */
export function smoothOneHot(
  { labels, numClasses, smoothing }: { labels: tf.Tensor1D; numClasses: number; smoothing: number },
): tf.Tensor2D {
  const off = smoothing / numClasses, on = 1 - smoothing + off;
  // tf.oneHot's result is int32 whatever on/off are (wasm truncates 0.91 to 0): scale a 0/1 float one-hot.
  return tf.tidy(() =>
    tf.add(tf.mul(tf.cast(tf.oneHot(labels, numClasses), "float32"), on - off), off) as tf.Tensor2D
  );
}

/**
 * Mixup / CutMix target (timm mixup_target): the smoothed one-hot of each label mixed with that of the batch
 * in reverse order (the partner image of sample i is sample B−1−i): λ·y + (1 − λ)·flip(y).
 */
export function mixupTarget(
  { labels, numClasses, lam, smoothing }: {
    labels: tf.Tensor1D;
    numClasses: number;
    lam: number;
    smoothing: number;
  },
): tf.Tensor2D {
  return tf.tidy(() => {
    const y1 = smoothOneHot({ labels, numClasses, smoothing });
    const y2 = smoothOneHot({ labels: tf.reverse(labels), numClasses, smoothing });
    return tf.add(tf.mul(y1, lam), tf.mul(y2, 1 - lam)) as tf.Tensor2D;
  });
}

export type DistillationType = "none" | "soft" | "hard";

export interface DistillationArgs {
  /** The base criterion's value on the class head (CE, label smoothing or soft-target CE). */
  base: tf.Scalar;
  /** The student logits that learn from the teacher: the distillation head (⚗) or the class head. */
  studentKd: tf.Tensor2D;
  /** Frozen teacher's logits on the same (augmented) batch; unused for "none". */
  teacherLogits?: tf.Tensor2D;
  type: DistillationType;
  /** Weight of the distillation term: loss = (1 − α)·base + α·distillation. */
  alpha: number;
  /** Temperature of the soft KL. */
  tau: number;
  /**
   * Normalisation of the soft KL sum: "numel" divides by B·C as the reference code does (PyTorch's legacy
   * mean); "batchmean" divides by B (the mathematically standard KL per sample).
   */
  klReduction?: "numel" | "batchmean";
}

/**
 * DeiT's DistillationLoss. `none`: base only. `soft`: (1 − α)·base + α·τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ)),
 * the KL summed and divided per `klReduction`. `hard`: (1 − α)·base + α·CE(z_s, argmax z_t).
 * The teacher logits must come from a forward pass outside the gradient computation (the training step runs
 * the frozen teacher first), so no gradient can reach the teacher.
 */
export function distillationLoss(a: DistillationArgs): tf.Scalar {
  if (a.type === "none") return tf.clone(a.base);
  if (!a.teacherLogits) throw new Error(`distillation '${a.type}' needs the teacher's logits`);
  const teacher = a.teacherLogits;
  return tf.tidy(() => {
    let kd: tf.Scalar;
    if (a.type === "soft") {
      const logS = tf.logSoftmax(tf.div(a.studentKd, a.tau));
      const logT = tf.logSoftmax(tf.div(teacher, a.tau));
      const sum = tf.sum(tf.mul(tf.exp(logT), tf.sub(logT, logS)));
      const n = a.klReduction === "batchmean" ? a.studentKd.shape[0] : a.studentKd.size;
      kd = tf.mul(tf.div(sum, n), a.tau * a.tau) as tf.Scalar;
    } else if (a.type === "hard") {
      kd = crossEntropy({ logits: a.studentKd, labels: tf.argMax(teacher, 1) as tf.Tensor1D });
    } else {
      throw new Error(`unknown distillation type '${a.type}' (none, soft, hard)`);
    }
    return tf.add(tf.mul(a.base, 1 - a.alpha), tf.mul(kd, a.alpha)) as tf.Scalar;
  });
}
