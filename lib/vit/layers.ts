/**
 * The ViT's parts as small functions over tf tensors: Linear, LayerNorm, exact GELU, DropPath, Attention, MLP.
 *
 * Weights live in the model's parameter map under timm's names; Linear weights are kept as `[in, out]` (the
 * transpose of PyTorch's `[out, in]`) so that the forward pass is a plain matmul.
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../base/rng.ts";
import { attentionCore, dense, gelu as geluFast, layerNorm as layerNormFast } from "../accel/ops.ts";

/**
 * `fast`: the ops of lib/accel/ops.ts (hand-written gradients on plain 2-D matmuls, attention as a loop of 2-D
 * matmuls). `reference`: the direct tf formulation, kept to check the fast path against (same values up to
 * float rounding).
 */
export type Impl = "fast" | "reference";

/** Looks a parameter up by its timm name. */
export type ParamGetter = (name: string) => tf.Tensor;

/** y = x·W + b for x `[M, in]`, W `[in, out]` → `[M, out]`. */
export function linear(
  x: tf.Tensor2D,
  p: ParamGetter,
  prefix: string,
  bias = true,
  impl: Impl = "fast",
): tf.Tensor2D {
  if (impl === "fast") {
    return dense(
      x,
      p(prefix + ".weight") as tf.Tensor2D,
      bias ? p(prefix + ".bias") as tf.Tensor1D : undefined,
    );
  }
  const y = tf.matMul(x, p(prefix + ".weight")) as tf.Tensor2D;
  return bias ? tf.add(y, p(prefix + ".bias")) as tf.Tensor2D : y;
}

/** LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm. */
export function layerNorm(
  x: tf.Tensor,
  p: ParamGetter,
  prefix: string,
  eps: number,
  impl: Impl = "fast",
): tf.Tensor {
  if (impl === "fast") {
    return layerNormFast(x, p(prefix + ".weight") as tf.Tensor1D, p(prefix + ".bias") as tf.Tensor1D, eps);
  }
  const { mean, variance } = tf.moments(x, -1, true);
  const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(xhat, p(prefix + ".weight")), p(prefix + ".bias"));
}

/** The exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)) — not the tanh approximation (timm's nn.GELU default). */
export function gelu(x: tf.Tensor, impl: Impl = "fast"): tf.Tensor {
  if (impl === "fast") return geluFast(x);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/**
 * Stochastic depth on a residual branch `[B, ...]`: each sample's branch is kept with probability 1 − rate,
 * as `x / keep · floor(keep + U[0,1))` (timm's drop_path).
 */
export function dropPath(x: tf.Tensor, rate: number, training: boolean, rng: Rng): tf.Tensor {
  if (!training || rate === 0) return x;
  const keep = 1 - rate;
  const maskShape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
  const mask = tf.floor(tf.add(tf.randomUniform(maskShape, 0, 1, "float32", rng.nextSeed()), keep));
  return tf.mul(tf.div(x, keep), mask);
}

/** Standard (inverted) dropout; identity when not training or rate 0. */
export function dropout(x: tf.Tensor, rate: number, training: boolean, rng: Rng): tf.Tensor {
  if (!training || rate === 0) return x;
  return tf.dropout(x, rate, undefined, rng.nextSeed());
}

export interface AttentionShape {
  batch: number;
  tokens: number;
  heads: number;
  headDim: number;
}

/**
 * Multi-head self-attention on `x2d` `[B·T, D]` → `[B·T, D]`. One qkv projection whose output splits as
 * [q | k | v], each split by head; softmax(q·kᵀ/√d)·v; output projection. When `keepAttention` is given the
 * attention probabilities `[B, heads, T, T]` are pushed to it (for analysis).
 */
export function attention(
  x2d: tf.Tensor2D,
  p: ParamGetter,
  prefix: string,
  s: AttentionShape,
  qkvBias: boolean,
  keepAttention?: tf.Tensor4D[],
  impl: Impl = "fast",
): tf.Tensor2D {
  const { batch: B, tokens: T, heads: H, headDim: hd } = s;
  const qkv = linear(x2d, p, prefix + ".qkv", qkvBias, impl); // [B·T, 3D]
  if (impl === "fast") return linear(attentionCore(qkv, s, keepAttention), p, prefix + ".proj", true, impl);
  // [B, T, 3, H, hd] → [3, B, H, T, hd]
  const parts = tf.transpose(tf.reshape(qkv, [B, T, 3, H, hd]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(parts).map((t) => tf.reshape(t, [B * H, T, hd]) as tf.Tensor3D);
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)); // [B·H, T, T]
  const probs = tf.softmax(scores);
  if (keepAttention) keepAttention.push(tf.keep(tf.reshape(probs, [B, H, T, T])));
  const o = tf.matMul(probs, v); // [B·H, T, hd]
  const merged = tf.reshape(tf.transpose(tf.reshape(o, [B, H, T, hd]), [0, 2, 1, 3]), [B * T, H * hd]);
  return linear(merged as tf.Tensor2D, p, prefix + ".proj", true, impl);
}

/** fc1 → GELU → (dropout) → fc2 → (dropout), on `[M, D]`. */
export function mlp(
  x2d: tf.Tensor2D,
  p: ParamGetter,
  prefix: string,
  drop: (t: tf.Tensor) => tf.Tensor,
  impl: Impl = "fast",
): tf.Tensor2D {
  const h = drop(gelu(linear(x2d, p, prefix + ".fc1", true, impl), impl)) as tf.Tensor2D;
  return drop(linear(h, p, prefix + ".fc2", true, impl)) as tf.Tensor2D;
}
