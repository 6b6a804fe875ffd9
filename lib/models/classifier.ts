import type * as tf from "@tensorflow/tfjs";

/** Any model that predicts: `[B, H, W, 3]` normalised → logits `[B, classes]` in eval mode. */
export interface Classifier {
  predict(x: tf.Tensor4D): tf.Tensor2D;
}
